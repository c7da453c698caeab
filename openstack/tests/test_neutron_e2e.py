"""End to end: Neutron's API (openstacksdk), the xdpath mechanism and QoS
drivers in it, ``neutron-xdpath-agent`` as a process of its own (role
``network``), and a real xdpathd on a network node in a namespace
(`testenv.qos_bed`) with UDP from an "external" namespace to floating IPs.
The agent is never called: Neutron is changed through its API, and what
xdpath does is read from xdpathd's API and measured on the wire."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openstack.connection import Connection

from neutron_xdpath.client import Xdpathd
from testenv import NeutronEnv
from testenv.env import _venv_bin
from testenv.process import Service, tail
from testenv.qos_bed import EXTERNAL_CIDR, QosBed
from testenv.scratch import scratch_bed

ATTACK_PPS = 10_000.0  # 10x the first limit
LEGIT_PPS = 200.0
SECONDS = 1.5
# An operator's own limit (not the agent's): it must outlive every pass.
OPERATOR_SCOPE = "192.0.2.0/24"


@pytest.fixture(scope="module")
def bed() -> Iterator[QosBed]:
    with scratch_bed("xdpath-qbed-", lambda workdir: QosBed(workdir).build()) as bed:
        yield bed


@pytest.fixture(scope="module")
def conn(neutron_env: NeutronEnv) -> Connection:
    connection: Connection = neutron_env.connection()
    return connection


class Agent:
    """neutron-xdpath-agent as the operator runs it: its INI file and its
    console script."""

    def __init__(self, env: NeutronEnv, bed: QosBed, role: str = "network") -> None:
        self.config = bed.workdir / "xdpath_agent.ini"
        self.log = bed.workdir / "agent.log"
        self.config.write_text(
            f"""[neutron]
auth_type = none
endpoint = {env.api_url}
project_id = {env.project_id}
[xdpathd]
endpoint = {bed.endpoint}
token_file = {bed.token_file}
timeout = 2
[agent]
role = {role}
interfaces = eth0
poll_interval = 0.5
resync_interval = 30
"""
        )
        self.service: Service | None = None

    def start(self) -> None:
        argv = [
            str(_venv_bin() / "neutron-xdpath-agent"),
            "--config-file",
            str(self.config),
            "--log-file",
            str(self.log),
        ]
        self.service = Service.start("neutron-xdpath-agent", argv, self.log.with_suffix(".out"))

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


@contextlib.contextmanager
def running(agent: Agent, bed: QosBed, request: pytest.FixtureRequest) -> Iterator[Agent]:
    """The agent started, then stopped; its log (and the bed's) kept for
    the report when a test failed."""
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
        if request.session.testsfailed:
            from tests.conftest import _logs

            _logs.append(f"--- agent\n{tail(agent.log, 80)}\n{bed.logs()}")


@pytest.fixture(scope="module")
def agent(neutron_env: NeutronEnv, bed: QosBed, request: pytest.FixtureRequest) -> Iterator[Agent]:
    bed.xdpath("ratelimit", "add", "--per", "src", "--scope", OPERATOR_SCOPE, "--pps", "100")
    with running(Agent(neutron_env, bed), bed, request) as agent:
        yield agent


@pytest.fixture(scope="module")
def xdpathd(bed: QosBed) -> Xdpathd:
    return Xdpathd(bed.endpoint, bed.token, timeout=3)


@pytest.fixture(scope="module")
def topology(conn: Connection, neutron_env: NeutronEnv, bed: QosBed) -> dict[str, Any]:
    """An external network with a subnet, a tenant network, subnet and
    port behind a router, and two floating IPs for the port's address and
    another; both FIP addresses are the network node's."""
    project = neutron_env.project_id
    ext = conn.network.create_network(
        project_id=project,
        name="public",
        is_router_external=True,
        provider_network_type="flat",
        provider_physical_network="public",
    )
    conn.network.create_subnet(
        project_id=project,
        network_id=ext.id,
        cidr=EXTERNAL_CIDR,
        ip_version=4,
        gateway_ip="203.0.113.1",
        allocation_pools=[{"start": "203.0.113.100", "end": "203.0.113.199"}],
    )
    net = conn.network.create_network(project_id=project, name="tenant")
    subnet = conn.network.create_subnet(
        project_id=project, network_id=net.id, cidr="10.0.0.0/24", ip_version=4
    )
    router = conn.network.create_router(
        project_id=project, name="r1", external_gateway_info={"network_id": ext.id}
    )
    conn.network.add_interface_to_router(router, subnet=subnet.id)
    port = conn.network.create_port(project_id=project, network_id=net.id, name="vm1")
    other = conn.network.create_port(project_id=project, network_id=net.id, name="vm2")
    fip = conn.network.create_ip(project_id=project, floating_network_id=ext.id, port_id=port.id)
    legit = conn.network.create_ip(project_id=project, floating_network_id=ext.id, port_id=other.id)
    bed.add_floating_ip(fip.floating_ip_address)
    bed.add_floating_ip(legit.floating_ip_address)
    return {"fip": fip, "legit": legit, "port": port}


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def owner_limits(xdpathd: Xdpathd, owner: str) -> list[dict[str, Any]]:
    return xdpathd.limits(owner)


def measure(bed: QosBed, fip: str, legit: str) -> tuple[dict[str, float], dict[str, float]]:
    result = bed.traffic({fip: ATTACK_PPS, legit: LEGIT_PPS}, SECONDS)
    print(f"to the FIP: {result[fip]}; to the other: {result[legit]}")
    return result[fip], result[legit]


def assert_limited(flow: dict[str, float], pps: float, burst: float) -> None:
    """What reached the FIP is what a bucket of ``pps`` and ``burst``
    lets through in the time sent (5 % and a few frames of slack)."""
    allowed = pps * flow["seconds"] + burst
    assert flow["received"] <= allowed * 1.05 + 20, flow
    # Not far below it either, unless the sender fell short (a busy machine).
    assert flow["received"] >= min(flow["sent"], allowed) * 0.7, flow


def test_a_packet_rate_limit_on_a_floating_ip_is_enforced_changed_and_removed(
    *,
    conn: Connection,
    neutron_env: NeutronEnv,
    topology: dict[str, Any],
    agent: Agent,
    xdpathd: Xdpathd,
    bed: QosBed,
) -> None:
    fip, legit = topology["fip"], topology["legit"]
    address, legit_address = fip.floating_ip_address, legit.floating_ip_address
    owner = f"neutron-fip-{fip.id}"

    # No policy: everything arrives.
    attack, other = measure(bed, address, legit_address)
    assert attack["received"] >= attack["sent"] * 0.95, attack

    policy = conn.network.create_qos_policy(project_id=neutron_env.project_id, name="ddos")
    rule = conn.network.create_qos_packet_rate_limit_rule(
        policy, max_kpps=1, max_burst_kpps=1, direction="ingress"
    )
    conn.network.update_ip(fip, qos_policy_id=policy.id)
    took = wait_for("the 1 kpps limit", lambda: pps_of(xdpathd, owner) == 1000)
    print(f"1 kpps in force {took:.1f} s after the FIP's update")
    [limit] = owner_limits(xdpathd, owner)
    assert limit["per"] == "dst" and limit["scope"] == f"{address}/32", limit

    attack, other = measure(bed, address, legit_address)
    assert_limited(attack, 1000, 1000)
    assert other["received"] >= other["sent"] * 0.95, f"the other FIP is not limited: {other}"
    [limit] = owner_limits(xdpathd, owner)
    dropped = attack["sent"] - attack["received"]
    assert limit["drops"] >= dropped * 0.95, (limit, attack)
    metrics = xdpathd.call("GET", "/metrics")
    # The drops counter names the floating IP and its QoS policy.
    series = (
        f'xdpath_ratelimit_drops_total{{limit="{limit["id"]}",owner="{owner}",'
        f'floating_ip_id="{fip.id}",qos_policy_id="{policy.id}"}} '
    )
    [line] = [line for line in metrics.splitlines() if line.startswith(series)]
    assert int(line.split()[-1]) >= limit["drops"], (line, limit)
    listed = bed.xdpath("ratelimit", "list")
    assert any(
        line.split()[-1] == owner and f"{address}/32" in line for line in listed.splitlines()
    ), listed

    conn.network.update_qos_packet_rate_limit_rule(rule, policy, max_kpps=5, max_burst_kpps=5)
    took = wait_for("the 5 kpps limit", lambda: pps_of(xdpathd, owner) == 5000)
    print(f"5 kpps in force {took:.1f} s after the rule's update")
    attack, _ = measure(bed, address, legit_address)
    assert_limited(attack, 5000, 5000)

    conn.network.update_ip(fip, qos_policy_id=None)
    took = wait_for("the limit's removal", lambda: owner not in xdpathd.owners())
    print(f"limit gone {took:.1f} s after the FIP's policy was detached")
    attack, _ = measure(bed, address, legit_address)
    assert attack["received"] >= attack["sent"] * 0.95, attack
    assert operator_limit_kept(xdpathd)
    conn.network.delete_qos_policy(policy)


def test_restarts_converge_and_keep_the_operators_limit(
    *,
    conn: Connection,
    neutron_env: NeutronEnv,
    topology: dict[str, Any],
    agent: Agent,
    xdpathd: Xdpathd,
    bed: QosBed,
) -> None:
    fip = topology["fip"]
    owner = f"neutron-fip-{fip.id}"
    policy = conn.network.create_qos_policy(project_id=neutron_env.project_id, name="bw")
    conn.network.create_qos_bandwidth_limit_rule(policy, max_kbps=8000, direction="ingress")
    conn.network.update_ip(fip, qos_policy_id=policy.id)
    wait_for("the bandwidth limit", lambda: bps_of(xdpathd, owner) == 1_000_000)

    # The agent down while the policy changes: its first pass fixes it.
    agent.stop()
    conn.network.create_qos_packet_rate_limit_rule(policy, max_kpps=2, direction="ingress")
    agent.start()
    wait_for("the pps after the agent's restart", lambda: pps_of(xdpathd, owner) == 2000)

    # xdpathd restarted: its state is kept, nothing is duplicated.
    bed.stop_xdpathd()
    bed.start_xdpathd()
    time.sleep(1.5)
    assert len(xdpathd.limits(owner)) == 1

    # The owner removed behind the agent's back: put back.
    xdpathd.delete_owner(owner)
    wait_for("the owner back", lambda: pps_of(xdpathd, owner) == 2000)

    # Neutron down: the limits stay; a change made once it is back arrives.
    neutron_env.stop_api()
    time.sleep(1.5)
    assert pps_of(xdpathd, owner) == 2000
    neutron_env.start_api()
    neutron_env.wait_ready(time.monotonic() + 120)
    conn.network.update_ip(fip, qos_policy_id=None)
    wait_for("the limit's removal after Neutron's restart", lambda: owner not in xdpathd.owners())
    assert operator_limit_kept(xdpathd)
    assert [o for o in xdpathd.owners() if o.startswith("neutron-")] == []
    conn.network.delete_qos_policy(policy)


MANY_FIPS = 24


def test_more_floating_ips_with_a_limit_than_xdpaths_general_limits(
    *,
    conn: Connection,
    neutron_env: NeutronEnv,
    topology: dict[str, Any],
    agent: Agent,
    xdpathd: Xdpathd,
    bed: QosBed,
) -> None:
    """A network node's floating IPs by the dozen, each with a QoS policy:
    every one gets its limit, in xdpath's table of limits of one address
    each. (xdpath held 16 limits in all before it: the 17th document was
    refused, 422, and its floating IP went unlimited.)"""
    policy = conn.network.create_qos_policy(project_id=neutron_env.project_id, name="many")
    conn.network.create_qos_packet_rate_limit_rule(
        policy, max_kpps=2, max_burst_kpps=2, direction="ingress"
    )
    network = topology["fip"].floating_network_id
    fips = [
        conn.network.create_ip(project_id=neutron_env.project_id, floating_network_id=network)
        for _ in range(MANY_FIPS)
    ]
    owners = {f"neutron-fip-{fip.id}" for fip in fips}
    try:
        for fip in fips:
            conn.network.update_ip(fip, qos_policy_id=policy.id)
        took = wait_for(
            f"{MANY_FIPS} floating IPs' limits",
            lambda: owners <= set(xdpathd.owners()),
            timeout=60,
        )
        print(f"{MANY_FIPS} limits in force {took:.1f} s after the updates")
        for fip in fips:
            [limit] = owner_limits(xdpathd, f"neutron-fip-{fip.id}")
            assert limit["table"] == "address", limit
            assert limit["scope"] == f"{fip.floating_ip_address}/32", limit
        assert operator_limit_kept(xdpathd)
        last = fips[-1].floating_ip_address
        bed.add_floating_ip(last)
        attack, other = measure(bed, last, topology["legit"].floating_ip_address)
        assert_limited(attack, 2000, 2000)
        assert other["received"] >= other["sent"] * 0.95, f"the other FIP is not limited: {other}"
    finally:
        for fip in fips:
            conn.network.delete_ip(fip)
        wait_for("the limits' removal", lambda: not owners & set(xdpathd.owners()), timeout=60)
        conn.network.delete_qos_policy(policy)


def _limit_value(xdpathd: Xdpathd, owner: str, key: str) -> int | None:
    try:
        rows = xdpathd.limits(owner)
    except Exception:
        return None
    if len(rows) != 1:
        return None
    value = rows[0].get(key)
    return int(value) if value is not None else None


def pps_of(xdpathd: Xdpathd, owner: str) -> int | None:
    return _limit_value(xdpathd, owner, "packets_per_second")


def bps_of(xdpathd: Xdpathd, owner: str) -> int | None:
    return _limit_value(xdpathd, owner, "bytes_per_second")


def operator_limit_kept(xdpathd: Xdpathd) -> bool:
    rows = xdpathd.call("GET", "/v1/ratelimits")
    return any(row.get("scope") == OPERATOR_SCOPE and not row.get("owner") for row in rows)
