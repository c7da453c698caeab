"""A real Octavia for the tests: MariaDB, octavia-api and octavia-driver-agent
with the xdpath provider driver, all in one temporary directory.

    with OctaviaEnv() as env:
        conn = env.connection()
        conn.load_balancer.providers()

Everything runs from the venv the tests run in (openstack/setup.sh made it):
the services are that venv's console scripts. Nothing listens anywhere but
on 127.0.0.1 (the API) and on Unix sockets in the temporary directory (MariaDB,
the driver agent). `stop` (or leaving the ``with``) stops every service and
removes the directory, whatever happened before.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from testenv.mariadb import MariaDB
from testenv.process import Service, check_output, tail

if TYPE_CHECKING:
    from openstack.connection import Connection

# Octavia's noauth takes the project from the X-Project-Id header (oslo.context
# reads the Keystone headers even without Keystone); any string works.
DEFAULT_PROJECT_ID = "0b5a6c0ffee0000000000000000000a1"

# What the tests give Octavia as enabled_provider_drivers: name -> description
# (neither may hold "," or ":").
DEFAULT_PROVIDERS: Mapping[str, str] = {
    "xdpath": "The xdpath provider driver",
    "noop_driver": "The Octavia no-op provider driver",
}


def _venv_bin() -> Path:
    # The venv's bin/, also when sys.executable is a symlink out of it.
    return Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_PREFIX = "xdpath-octavia-"
_OWNER = "owner.pid"


def _temp_root() -> Path:
    # tmpfs if there is one: MariaDB's fsyncs cost nothing there, which makes
    # the database and the migrations several times faster.
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def _remove_stale(root: Path, prefix: str = _PREFIX) -> None:
    """Remove what an earlier test process left behind when it was killed
    (SIGKILL: its services got SIGTERM from the kernel, but nobody removed
    the directory)."""
    for base in root.glob(f"{prefix}*"):
        try:
            owner = int((base / _OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(base, ignore_errors=True)


class OctaviaEnv:
    """Octavia with the xdpath provider, started by `start`, gone after `stop`.

    ``balancer_endpoints`` goes to ``[xdpath] balancer_endpoints``;
    ``extra_config`` (section -> option -> value) is written over the
    generated configuration, so a test can set any option of Octavia's or of
    the driver's. ``debug`` turns on Octavia's debug logging.
    """

    def __init__(
        self,
        *,
        balancer_endpoints: Sequence[str] = (),
        providers: Mapping[str, str] = DEFAULT_PROVIDERS,
        default_provider: str = "xdpath",
        extra_config: Mapping[str, Mapping[str, str]] | None = None,
        project_id: str = DEFAULT_PROJECT_ID,
        debug: bool = False,
    ) -> None:
        self.balancer_endpoints = list(balancer_endpoints)
        self.providers = dict(providers)
        self.default_provider = default_provider
        self.extra_config = {k: dict(v) for k, v in (extra_config or {}).items()}
        self.project_id = project_id
        self.debug = debug
        self.base = Path()
        self.port = 0
        self._mariadb: MariaDB | None = None
        self._services: list[Service] = []
        self._started = False

    # -- where things are -------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.base / "octavia.conf"

    @property
    def status_socket(self) -> Path:
        return self.base / "status.sock"

    @property
    def stats_socket(self) -> Path:
        return self.base / "stats.sock"

    @property
    def get_socket(self) -> Path:
        return self.base / "get.sock"

    @property
    def api_log(self) -> Path:
        return self.base / "octavia-api.log"

    @property
    def agent_log(self) -> Path:
        return self.base / "octavia-driver-agent.log"

    # -- life -------------------------------------------------------------

    def __enter__(self) -> OctaviaEnv:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> OctaviaEnv:
        """MariaDB, a fresh database migrated to Octavia's head, the driver
        agent and the API; returns when the API answers and every enabled
        provider driver has loaded. On any failure everything started so far
        is stopped and removed before the error is raised."""
        if self._started:
            raise RuntimeError("OctaviaEnv already started")
        self._started = True
        root = _temp_root()
        _remove_stale(root)
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
        database_url = self._mariadb.create_database("octavia")
        self.port = _free_port()
        self._write_config(database_url)
        # The services first: each takes seconds to import Octavia, and
        # neither touches the database before its first request, so the
        # migrations run meanwhile. The driver's DriverLibrary waits for the
        # agent's sockets, so the order of the agent and the API does not
        # matter either.
        agent = self._service("octavia-driver-agent", self.agent_log)
        api = self._service("octavia-api", self.api_log)
        check_output(
            [
                str(_venv_bin() / "octavia-db-manage"),
                "--config-file",
                str(self.config_file),
                "upgrade",
                "head",
            ],
            what="octavia-db-manage upgrade head",
        )
        sockets = (self.status_socket, self.stats_socket, self.get_socket)
        while not all(path.exists() for path in sockets):
            agent.check_running(self.agent_log)
            self._check_deadline(deadline, "the driver agent's sockets")
            time.sleep(0.1)
        while (providers := self._get_providers()) is None:
            api.check_running(self.api_log)
            self._check_deadline(deadline, "octavia-api")
            time.sleep(0.2)
        missing = set(self.providers) - set(providers)
        if missing:
            raise RuntimeError(
                f"octavia-api did not load the provider driver(s) {sorted(missing)} "
                f"(it drops a driver that fails to load):\n{tail(self.api_log, 60)}"
            )

    def stop(self) -> None:
        """Stop the API, the driver agent and MariaDB, remove the directory.
        Idempotent; every step is tried even if one before it failed."""
        errors: list[BaseException] = []
        for service in reversed(self._services):
            try:
                service.stop()
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)
        self._services.clear()
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

    # -- clients ----------------------------------------------------------

    def connection(self, project_id: str | None = None) -> Connection:
        """An openstacksdk Connection to this Octavia (only its load-balancer
        service works: there is no Keystone, Neutron or Nova). Requests carry
        ``X-Project-Id`` (``project_id``, by default the environment's), which
        Octavia's noauth needs to create anything; noauth makes every caller an
        administrator."""
        # Imported here so that the module imports without openstacksdk.
        import openstack.connection
        from keystoneauth1 import noauth
        from keystoneauth1 import session as ks_session

        session = ks_session.Session(
            auth=noauth.NoAuth(),
            additional_headers={"X-Project-Id": project_id or self.project_id},
        )
        return openstack.connection.Connection(
            session=session,
            load_balancer_endpoint_override=self.api_url,
            load_balancer_api_version="2",
        )

    def cli_env(self) -> dict[str, str]:
        """Environment for the ``openstack`` CLI (``openstack loadbalancer
        list`` and the like). The CLI cannot send X-Project-Id: commands that
        create need ``--project <id>``, and those that name a subnet or network
        look it up in Neutron, which is not there: create through
        `connection` instead."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            OS_AUTH_TYPE="none",
            OS_ENDPOINT=self.api_url,
            OS_LOAD_BALANCER_ENDPOINT_OVERRIDE=self.api_url,
            OS_CLIENT_CONFIG_FILE=str(self.base / "no-clouds.yaml"),
        )
        return env

    def logs(self, lines: int = 60) -> str:
        """The end of every log, for a failing test's report."""
        parts = []
        for name in (
            "octavia-api.log",
            "octavia-api.out",
            "octavia-driver-agent.log",
            "octavia-driver-agent.out",
            "mariadb/mariadb.log",
        ):
            parts.append(f"==> {name} <==\n{tail(self.base / name, lines)}")
        return "\n".join(parts)

    # -- inside -----------------------------------------------------------

    def _service(self, script: str, log_file: Path) -> Service:
        argv = [
            str(_venv_bin() / script),
            "--config-file",
            str(self.config_file),
            "--log-file",
            str(log_file),
        ]
        service = Service.start(script, argv, log=self.base / f"{script}.out")
        self._services.append(service)
        return service

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}:\n{self.logs()}")

    def _get_providers(self) -> list[str] | None:
        try:
            with urllib.request.urlopen(f"{self.api_url}/v2/lbaas/providers", timeout=5) as reply:
                body = json.load(reply)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return [provider["name"] for provider in body["providers"]]

    def _write_config(self, database_url: str) -> None:
        sections: dict[str, dict[str, str]] = {
            "DEFAULT": {
                "debug": str(self.debug).lower(),
                # Nothing here sends RPC (that is the amphora provider's way
                # to octavia-worker); the fake driver makes sure that nothing
                # could reach for a RabbitMQ.
                "transport_url": "fake://",
            },
            "api_settings": {
                "bind_host": "127.0.0.1",
                "bind_port": str(self.port),
                "auth_strategy": "noauth",
                "enabled_provider_drivers": ",".join(
                    f"{name}:{description}" for name, description in self.providers.items()
                ),
                "default_provider_driver": self.default_provider,
            },
            "database": {"connection": database_url},
            # No VMs, no Neutron, no Nova: the API asks the network driver
            # about the VIP's subnet and port, and the noop one makes them up.
            "controller_worker": {
                "network_driver": "network_noop_driver",
                "compute_driver": "compute_noop_driver",
                "amphora_driver": "amphora_noop_driver",
                "volume_driver": "volume_noop_driver",
                "image_driver": "image_noop_driver",
            },
            "certificates": {"cert_manager": "noop_cert_manager"},
            "driver_agent": {
                "status_socket_path": str(self.status_socket),
                "stats_socket_path": str(self.stats_socket),
                "get_socket_path": str(self.get_socket),
                "enabled_provider_agents": "xdpath",
                "provider_agent_shutdown_timeout": "5",
            },
            "xdpath": {
                "balancer_endpoints": ",".join(self.balancer_endpoints),
                "pending_dir": str(self.base / "pending"),
            },
        }
        for section, options in self.extra_config.items():
            sections.setdefault(section, {}).update(options)
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(sections)
        with self.config_file.open("w") as out:
            parser.write(out)
