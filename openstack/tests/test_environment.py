"""The environment works end to end: openstacksdk → octavia-api → the xdpath
driver → DriverLibrary → the driver agent's status socket → Octavia's
database → back out of the API."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import openstack.exceptions
from openstack.connection import Connection
from openstack.load_balancer.v2.load_balancer import LoadBalancer

from testenv import OctaviaEnv

# With the no-op network driver any UUID is a subnet: the API asks the driver
# for the subnet and the port and gets made-up ones back.
SUBNET_ID = str(uuid.UUID(int=0x5B))
WAIT = 20.0


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_providers_list_xdpath(conn: Connection) -> None:
    providers = {p.name: p.description for p in conn.load_balancer.providers()}
    assert providers["xdpath"] == "The xdpath provider driver"


def test_flavor_capabilities_come_from_the_driver(conn: Connection) -> None:
    capabilities = {c.name for c in conn.load_balancer.provider_flavor_capabilities("xdpath")}
    assert capabilities == {
        "encapsulation",
        "gue_port",
        "source_pps_limit",
        "ring_size",
        "sampling_rate",
    }


def test_cli_lists_providers(octavia_env: OctaviaEnv) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "openstack"),
            "loadbalancer",
            "provider",
            "list",
            "-f",
            "value",
            "-c",
            "name",
        ],
        env=octavia_env.cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "xdpath" in done.stdout.split()


def test_load_balancer_goes_active_then_deleted(conn: Connection, octavia_env: OctaviaEnv) -> None:
    lb = conn.load_balancer.create_load_balancer(
        name="envtest",
        vip_subnet_id=SUBNET_ID,
        vip_address="203.0.113.10",
    )
    assert lb.provider == "xdpath"
    assert lb.project_id == octavia_env.project_id
    assert lb.provisioning_status == "PENDING_CREATE"

    def status_is(wanted: str) -> Callable[[], bool]:
        def check() -> bool:
            current: LoadBalancer = conn.load_balancer.get_load_balancer(lb.id)
            return bool(current.provisioning_status == wanted)

        return check

    # Only the driver, through the driver agent, can make it ACTIVE.
    wait_for("ACTIVE", status_is("ACTIVE"))
    current = conn.load_balancer.get_load_balancer(lb.id)
    assert current.operating_status == "ONLINE"
    assert current.vip_address == "203.0.113.10"
    assert current.vip_subnet_id == SUBNET_ID

    conn.load_balancer.delete_load_balancer(lb.id)

    def gone() -> bool:
        try:
            current = conn.load_balancer.get_load_balancer(lb.id)
        except openstack.exceptions.NotFoundException:
            return True
        return bool(current.provisioning_status == "DELETED")

    wait_for("DELETED", gone)
    assert lb.id not in {x.id for x in conn.load_balancer.load_balancers()}


def test_driver_library_reaches_the_agent_from_outside_octavia(
    conn: Connection, octavia_env: OctaviaEnv
) -> None:
    """What the provider agent (or any process) does: read Octavia's view of
    a load balancer through the agent's get socket and change its status
    through the status socket."""
    from octavia_lib.api.drivers import driver_lib

    lb = conn.load_balancer.create_load_balancer(
        name="libtest", vip_subnet_id=SUBNET_ID, vip_address="203.0.113.11"
    )
    wait_for(
        "ACTIVE",
        lambda: conn.load_balancer.get_load_balancer(lb.id).provisioning_status == "ACTIVE",
    )
    library = driver_lib.DriverLibrary(
        status_socket=str(octavia_env.status_socket),
        stats_socket=str(octavia_env.stats_socket),
        get_socket=str(octavia_env.get_socket),
    )
    seen = library.get_loadbalancer(lb.id)
    assert seen.loadbalancer_id == lb.id
    assert seen.vip_address == "203.0.113.11"

    library.update_loadbalancer_status(
        {"loadbalancers": [{"id": lb.id, "operating_status": "DEGRADED"}]}
    )
    assert conn.load_balancer.get_load_balancer(lb.id).operating_status == "DEGRADED"

    conn.load_balancer.delete_load_balancer(lb.id)
    wait_for("gone", lambda: lb.id not in {x.id for x in conn.load_balancer.load_balancers()})
