"""End to end: a stateless security group through Neutron's API
(openstacksdk), ``neutron-xdpath-agent`` as a process of its own (role
``compute``), and a real xdpathd in a namespace that holds the port's fixed
IP (`testenv.qos_bed`'s ``gw``, standing for the compute node), with TCP
and UDP from the "external" namespace. The agent is never called: what
xdpath does is read from xdpathd's API and seen on the wire."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openstack.connection import Connection

from neutron_xdpath.client import Xdpathd
from testenv import NeutronEnv
from testenv.qos_bed import QosBed
from testenv.scratch import scratch_bed
from tests.test_neutron_e2e import Agent, running, wait_for

ALLOWED_PREFIX = "203.0.113.0/28"  # holds ext's 203.0.113.1
PAIR = "10.1.0.200"  # the port's allowed address pair

_LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 22))
s.listen(64)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    conn.close()
"""

_CONNECT = """
import socket, sys
source = (sys.argv[2], 0) if len(sys.argv) > 2 else None
socket.create_connection((sys.argv[1], 22), timeout=1, source_address=source).close()
"""


DHCP_REPLIES = 3
_DHCP_REPLIES = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 67))
for _ in range({DHCP_REPLIES}):
    s.sendto(b"dhcp", (sys.argv[1], 68))
"""


@pytest.fixture(scope="module")
def bed() -> Iterator[QosBed]:
    with scratch_bed("xdpath-sgbed-", lambda workdir: QosBed(workdir).build()) as bed:
        yield bed


@pytest.fixture(scope="module")
def compute_agent(
    neutron_env: NeutronEnv, bed: QosBed, request: pytest.FixtureRequest
) -> Iterator[Agent]:
    with running(Agent(neutron_env, bed, role="compute"), bed, request) as agent:
        yield agent


def reaches(bed: QosBed, address: str, source: str | None = None) -> bool:
    """A TCP connection from ``ext`` (from ``source``, one of its
    addresses) to the address's port 22 opens."""
    argv = bed.argv("ext", "python3", "-c", _CONNECT, address, *([source] if source else []))
    done = subprocess.run(argv, capture_output=True, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def listening(bed: QosBed, address: str) -> Iterator[None]:
    """A TCP listener on the address's port 22 in ``gw`` (the compute
    node's side of the VM's address, which ``ext`` reaches)."""
    bed.add_floating_ip(address)
    bed.run("ext", "ip", "route", "replace", f"{address}/32", "dev", "eth0")
    listener = subprocess.Popen(
        bed.argv("gw", "python3", "-c", _LISTENER, address),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield
    finally:
        listener.kill()
        listener.wait()


def tenant_network(conn: Connection, project: str, name: str, cidr: str) -> Any:
    """A flat tenant network with one IPv4 subnet: its rules match the
    frames' own headers (a vxlan network's match the inner headers of its
    VNI: test_neutron_vxlan_e2e)."""
    net = conn.network.create_network(
        project_id=project,
        name=name,
        provider_network_type="flat",
        provider_physical_network=f"{name}-flat",
    )
    conn.network.create_subnet(project_id=project, network_id=net.id, cidr=cidr, ip_version=4)
    return net


def owned_rules(
    xdpathd: Xdpathd, owner: str, destination: str | None = None
) -> list[dict[str, Any]]:
    """The owner's rules (those for ``destination`` alone, if given)."""
    rows = xdpathd.call("GET", "/v1/rules") or []
    return [
        row
        for row in rows
        if row.get("owner") == owner and destination in (None, row.get("destination"))
    ]


def test_a_stateless_security_group_allows_only_what_it_says(
    *,
    neutron_env: NeutronEnv,
    compute_agent: Agent,
    bed: QosBed,
) -> None:
    conn: Connection = neutron_env.connection()
    xdpathd = Xdpathd(bed.endpoint, bed.token, timeout=3)
    project = neutron_env.project_id
    net = tenant_network(conn, project, "sg-tenant", "10.1.0.0/24")
    group = conn.network.create_security_group(project_id=project, name="ssh", stateful=False)
    ssh = conn.network.create_security_group_rule(
        project_id=project,
        security_group_id=group.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix=ALLOWED_PREFIX,
    )
    # A VRRP-style VIP the port receives for: Neutron filters it like the
    # fixed IP.
    port = conn.network.create_port(
        project_id=project,
        network_id=net.id,
        name="vm-sg",
        security_group_ids=[group.id],
        allowed_address_pairs=[{"ip_address": PAIR}],
    )
    address = port.fixed_ips[0]["ip_address"]
    owner = f"neutron-port-{port.id}"
    try:
        with listening(bed, address):
            _check_the_group(conn, xdpathd, bed, address=address, owner=owner, ssh=ssh)
    finally:
        conn.network.delete_port(port)
        wait_for("the owner's removal", lambda: owner not in xdpathd.owners())
        conn.network.delete_security_group(group)
        conn.network.delete_network(net)


def _check_the_group(
    conn: Connection, xdpathd: Xdpathd, bed: QosBed, *, address: str, owner: str, ssh: Any
) -> None:
    """The group's allow and drop in force, counted, and the allow gone
    within seconds of its rule's removal."""
    mine = f"{address}/32"
    took = wait_for("the port's rules", lambda: len(owned_rules(xdpathd, owner)) == 6)
    print(f"the group's rules in force {took:.1f} s after the port was made")
    # The group's allow; DHCP replies, which Neutron's firewall lets in
    # whatever the group says; the drop.
    allow, dhcp, drop = owned_rules(xdpathd, owner, mine)
    assert (dhcp["action"], dhcp["sources"], dhcp["protocol"], dhcp["dport"]) == (
        "admit", [], "udp", "68"
    ), dhcp  # fmt: skip
    assert (allow["action"], allow["sources"], allow["destination"], allow["dport"]) == (
        "admit", [ALLOWED_PREFIX], f"{address}/32", "22"
    ), allow  # fmt: skip
    assert (drop["action"], drop["destination"], drop["sources"]) == (
        "drop", f"{address}/32", []
    ), drop  # fmt: skip

    # Allowed: TCP 22 from the prefix opens, counted on the allow.
    assert reaches(bed, address), "TCP 22 from the allowed prefix"
    # Anything else to the address is dropped at xdpath, and counted.
    flow = bed.traffic({address: 500.0}, 1.0)[address]
    print(f"UDP to the port: {flow}")
    assert flow["sent"] > 300 and flow["received"] == 0, flow
    allow, dhcp, drop = owned_rules(xdpathd, owner, mine)
    assert allow["hits"] >= 1, allow
    assert drop["hits"] >= flow["sent"], (drop, flow)

    # A DHCP server's unicast replies (UDP 67 -> 68, as for every lease
    # renewal) are let in, not dropped.
    bed.run("ext", "python3", "-c", _DHCP_REPLIES, address)
    before = drop["hits"]
    _, dhcp, drop = owned_rules(xdpathd, owner, mine)
    assert dhcp["hits"] == DHCP_REPLIES, dhcp
    assert drop["hits"] == before, drop

    # The allowed address pair gets the same rules: UDP to it is dropped
    # too, and counted on its own drop.
    pair = owned_rules(xdpathd, owner, f"{PAIR}/32")
    assert [(r["action"], r["sources"], r["dport"]) for r in pair] == [
        ("admit", [ALLOWED_PREFIX], "22"), ("admit", [], "68"), ("drop", [], None)
    ], pair  # fmt: skip
    bed.add_floating_ip(PAIR)
    bed.run("ext", "ip", "route", "replace", f"{PAIR}/32", "dev", "eth0")
    flow = bed.traffic({PAIR: 500.0}, 1.0)[PAIR]
    print(f"UDP to the port's allowed address pair: {flow}")
    assert flow["sent"] > 300 and flow["received"] == 0, flow
    assert owned_rules(xdpathd, owner, f"{PAIR}/32")[-1]["hits"] >= flow["sent"]

    # The rule removed: TCP 22 is dropped within seconds.
    conn.network.delete_security_group_rule(ssh)
    removed = time.monotonic()
    wait_for("the allow's removal", lambda: len(owned_rules(xdpathd, owner)) == 4)
    wait_for("TCP 22 dropped", lambda: not reaches(bed, address))
    print(f"TCP 22 dropped {time.monotonic() - removed:.1f} s after the rule's removal")
    dhcp, drop = owned_rules(xdpathd, owner, mine)
    assert (dhcp["action"], dhcp["dport"], drop["action"]) == ("admit", "68", "drop")
