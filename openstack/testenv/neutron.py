"""A real Neutron for the tests: MariaDB and Neutron's API (ML2 with the
``xdpath`` mechanism driver, the QoS, router and FWaaS v2 service plug-ins,
the latter with xdpath's FWaaS driver), in one temporary directory.

    with NeutronEnv() as env:
        conn = env.connection()
        conn.network.qos_rule_types()

Neutron 29 has no ``neutron-server`` console script: the API is the WSGI
application ``neutron.wsgi.api:application``, served here on wsgiref by
`testenv.neutron_api` (the way octavia-api serves Octavia's). Nothing
listens anywhere but on 127.0.0.1 (the API) and on MariaDB's socket in the
directory. No RPC server, no agents: ``transport_url = fake:/`` (the API
builds an oslo.messaging transport and sends its notifications into the
void) and nothing binds ports (no VM is plugged in; xdpath enforces by
address).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from testenv.env import DEFAULT_PROJECT_ID, _free_port, _remove_stale, _temp_root, _venv_bin
from testenv.mariadb import MariaDB
from testenv.process import Service, check_output, tail

if TYPE_CHECKING:
    from openstack.connection import Connection

_PREFIX = "xdpath-neutron-"
# The xdpath FWaaS v2 service driver (neutron_xdpath.fwaas_driver).
FWAAS_PROVIDER = "FIREWALL_V2:xdpath:neutron_xdpath.fwaas_driver.XdpathFirewallDriver:default"
# A host that Neutron's test mechanism driver binds ports to.
BOUND_HOST = "host-ovs-no_filter"
_OWNER = "owner.pid"


class NeutronEnv:
    """Neutron with the xdpath mechanism driver, started by `start`, gone
    after `stop`. ``extra_config`` (section -> option -> value) is written
    over the generated ``neutron.conf``."""

    def __init__(
        self,
        *,
        extra_config: Mapping[str, Mapping[str, str]] | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
        debug: bool = False,
    ) -> None:
        self.extra_config = {k: dict(v) for k, v in (extra_config or {}).items()}
        self.project_id = project_id
        self.debug = debug
        self.base = Path()
        self.port = 0
        self.migrations_took = 0.0
        self._mariadb: MariaDB | None = None
        self._api: Service | None = None
        self._started = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.base / "neutron.conf"

    @property
    def api_log(self) -> Path:
        return self.base / "neutron-api.log"

    def __enter__(self) -> NeutronEnv:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> NeutronEnv:
        """MariaDB, a database migrated to Neutron's heads (and
        neutron-fwaas's, when installed), and the API; returns when the API
        lists the xdpath QoS driver's rule types. On failure everything
        started is stopped and removed before the error is raised."""
        if self._started:
            raise RuntimeError("NeutronEnv already started")
        self._started = True
        root = _temp_root()
        _remove_stale(root, _PREFIX)
        self.base = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=root))
        (self.base / _OWNER).write_text(str(os.getpid()))
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._mariadb = MariaDB(self.base / "mariadb")
        self._mariadb.start()
        database_url = self._mariadb.create_database("neutron")
        self.port = _free_port()
        self._write_config(database_url)
        # Neutron's plug-ins read their tables as they start: migrate first.
        began = time.monotonic()
        check_output(
            [
                str(_venv_bin() / "neutron-db-manage"),
                "--config-file",
                str(self.config_file),
                "upgrade",
                "heads",
            ],
            what="neutron-db-manage upgrade heads",
        )
        self.migrations_took = time.monotonic() - began
        self.start_api()
        self.wait_ready(deadline)

    def start_api(self) -> None:
        """(Re)starts the API process (after `stop_api`)."""
        argv = [
            sys.executable,
            "-m",
            "testenv.neutron_api",
            "--port",
            str(self.port),
            "--config-file",
            str(self.config_file),
            "--log-file",
            str(self.api_log),
        ]
        env = dict(os.environ)
        here = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        self._api = Service.start("neutron-api", argv, log=self.base / "neutron-api.out", env=env)

    def stop_api(self) -> None:
        if self._api is not None:
            self._api.stop()
            self._api = None

    def wait_ready(self, deadline: float) -> None:
        while (types := self._rule_types()) is None:
            if self._api is not None:
                self._api.check_running(self.api_log)
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for Neutron's API:\n{self.logs()}")
            time.sleep(0.2)
        if "packet_rate_limit" not in types:
            raise RuntimeError(
                f"Neutron lists no packet_rate_limit rule type (the xdpath QoS driver "
                f"did not register): {types}\n{tail(self.api_log, 60)}"
            )

    def stop(self) -> None:
        """Stop the API and MariaDB, remove the directory. Idempotent."""
        errors: list[BaseException] = []
        try:
            self.stop_api()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        if self._mariadb is not None:
            try:
                self._mariadb.stop()
            except Exception as error:  # pragma: no cover
                errors.append(error)
            self._mariadb = None
        if self.base != Path() and self.base.exists():
            shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]

    def connection(self, project_id: str | None = None) -> Connection:
        """An openstacksdk Connection to this Neutron. Requests carry
        ``X-Project-Id``; Neutron's noauth still wants ``project_id`` in the
        body of what is created (pass ``project_id=env.project_id``)."""
        import openstack.connection
        from keystoneauth1 import noauth
        from keystoneauth1 import session as ks_session

        session = ks_session.Session(
            auth=noauth.NoAuth(),
            additional_headers={"X-Project-Id": project_id or self.project_id},
        )
        return openstack.connection.Connection(
            session=session, network_endpoint_override=self.api_url
        )

    def cli_env(self) -> dict[str, str]:
        """Environment for the ``openstack`` CLI (``openstack network qos
        policy show`` and the like)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            OS_AUTH_TYPE="none",
            OS_ENDPOINT=self.api_url,
            OS_NETWORK_ENDPOINT_OVERRIDE=self.api_url,
            OS_CLIENT_CONFIG_FILE=str(self.base / "no-clouds.yaml"),
        )
        return env

    def logs(self, lines: int = 60) -> str:
        parts = []
        for name in ("neutron-api.log", "neutron-api.out", "mariadb/mariadb.log"):
            parts.append(f"==> {name} <==\n{tail(self.base / name, lines)}")
        return "\n".join(parts)

    def _rule_types(self) -> list[str] | None:
        request = urllib.request.Request(
            f"{self.api_url}/v2.0/qos/rule-types", headers={"X-Project-Id": self.project_id}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                body = json.load(reply)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return [rule["type"] for rule in body["rule_types"]]

    def _write_config(self, database_url: str) -> None:
        paste = _venv_bin().parent / "etc" / "neutron" / "api-paste.ini"
        sections: dict[str, dict[str, str]] = {
            "DEFAULT": {
                "debug": str(self.debug).lower(),
                "core_plugin": "ml2",
                "service_plugins": "router,qos,firewall_v2",
                "auth_strategy": "noauth",
                "transport_url": "fake:/",
                "api_paste_config": str(paste),
                "state_path": str(self.base / "state"),
                "notify_nova_on_port_status_changes": "false",
                "notify_nova_on_port_data_changes": "false",
            },
            "database": {"connection": database_url},
            "ml2": {
                "type_drivers": "flat,vxlan,geneve",
                "tenant_network_types": "vxlan",
                # Neutron's own test driver binds ports to host
                # "host-ovs-no_filter" (VIF type ovs): FWaaS takes VM ports
                # that are bound only.
                "mechanism_drivers": "xdpath,test",
                "extension_drivers": "qos,port_security",
            },
            "ml2_type_vxlan": {"vni_ranges": "1000:1999"},
            # Geneve's type driver needs no OVN: admins make geneve networks.
            "ml2_type_geneve": {"vni_ranges": "2000:2999", "max_header_size": "38"},
            "ml2_type_flat": {"flat_networks": "*"},
            "oslo_concurrency": {"lock_path": str(self.base / "lock")},
            "service_providers": {"service_provider": FWAAS_PROVIDER},
        }
        for section, options in self.extra_config.items():
            sections.setdefault(section, {}).update(options)
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(sections)
        with self.config_file.open("w") as out:
            parser.write(out)
