"""End to end: a tenant network's VNI through Neutron. Neutron's ML2 gives
a tenant network a vxlan segment (its VNI); a port on it with a stateless
security group is made through Neutron's API (openstacksdk), and
``neutron-xdpath-agent`` (role ``compute``, a process of its own) puts the
port's rules into xdpathd on the compute node (`testenv.qos_bed`'s
``gw``, xdpath on ``eth0``, the tunnel interface) with ``vni`` = the
segmentation id. Real Linux vxlan devices carry the tenant's pings from
``ext`` (another hypervisor): those of the inner source the group does not
allow, on the port's VNI, are dropped at XDP and counted on the port's
drop rule; another inner source the group allows is answered; the same
inner frames on another network's VNI (the same addresses, in namespaces
of their own) pass untouched. The rules' counters carry labels naming the
port and the security group in ``/metrics``. The agent is never called."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from openstack.connection import Connection

from neutron_xdpath.client import Xdpathd
from testenv import NeutronEnv
from testenv.qos_bed import QosBed
from testenv.scratch import scratch_bed
from testenv.vxlan import EXT_MAC, GW_MAC, PINGS, overlay, ping, tunnel
from tests.test_neutron_e2e import Agent, running, wait_for
from tests.test_neutron_sg_e2e import owned_rules

CIDR = "10.9.0.0/24"
VM = "10.9.0.10"  # the port's fixed IP
DENIED = "10.9.0.20"  # an inner source the group does not allow
ALLOWED = "10.9.0.21"  # one it allows (ICMP)


@pytest.fixture(scope="module")
def bed() -> Iterator[QosBed]:
    with scratch_bed("xdpath-vxbed-", lambda workdir: QosBed(workdir).build()) as bed:
        yield bed


@pytest.fixture(scope="module")
def compute_agent(
    neutron_env: NeutronEnv, bed: QosBed, request: pytest.FixtureRequest
) -> Iterator[Agent]:
    with running(Agent(neutron_env, bed, role="compute"), bed, request) as agent:
        yield agent


def metrics(bed: QosBed) -> str:
    request = urllib.request.Request(
        f"{bed.endpoint}/metrics", headers={"Authorization": f"Bearer {bed.token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        text: str = reply.read().decode()
    return text


def hits(xdpathd: Xdpathd, owner: str) -> dict[str, int]:
    """The owner's rules' hits, by action (the group's admit: the one with
    a source; the DHCP admit every port gets is left out)."""
    return {
        rule["action"]: int(rule["hits"])
        for rule in owned_rules(xdpathd, owner)
        if rule["action"] == "drop" or rule["sources"]
    }


def plumb(bed: QosBed, kind: str, vni: int, other_vni: int) -> bool:
    """The port's VNI between ``gw`` (the VM) and ``ext`` (the denied and
    the allowed source); the other VNI between namespaces of their own
    (``vm2``, ``t2``) holding the VM's and the denied source's addresses.
    `unplumb` removes them. False: this kernel has no ``kind`` devices
    (built without them, as Geneve is on some CI kernels)."""
    try:
        tunnel(bed, "gw", "vxa", vni, kind=kind)
    except RuntimeError as error:
        if "Unknown device type" in str(error):
            return False
        raise
    vm2, t2 = f"vm2{kind}", f"t2{kind}"
    bed.add_namespace(vm2)
    bed.add_namespace(t2)
    overlay(bed, "gw", "vxa", [VM], peers=[DENIED, ALLOWED], mac=EXT_MAC)
    tunnel(bed, "ext", "vxa", vni, kind=kind)
    overlay(bed, "ext", "vxa", [DENIED, ALLOWED], peers=[VM], mac=GW_MAC)
    tunnel(bed, "gw", "vxb", other_vni, kind=kind, into=vm2)
    overlay(bed, vm2, "vxb", [VM], peers=[DENIED], mac=EXT_MAC)
    tunnel(bed, "ext", "vxb", other_vni, kind=kind, into=t2)
    overlay(bed, t2, "vxb", [DENIED], peers=[VM], mac=GW_MAC)
    return True


@dataclass
class Tenant:
    """What the test made in Neutron."""

    kind: str
    vni: int
    other_vni: int
    port_id: str
    group_id: str
    # Whether the kernel carries this kind of tunnel (the traffic half).
    wire: bool = True

    @property
    def owner(self) -> str:
        return f"neutron-port-{self.port_id}"


@pytest.fixture(params=["vxlan", "geneve"])
def tenant(
    neutron_env: NeutronEnv, bed: QosBed, request: pytest.FixtureRequest
) -> Iterator[Tenant]:
    """Two networks of the kind (vxlan: ML2's tenant type; geneve: asked
    for, as an admin does), each with its VNI from ML2's range, a
    stateless group allowing ICMP from ``ALLOWED`` only, the port with it
    at ``VM``, and the overlays."""
    kind: str = request.param
    conn: Connection = neutron_env.connection()
    xdpathd = Xdpathd(bed.endpoint, bed.token, timeout=3)
    project = neutron_env.project_id
    typed = {} if kind == "vxlan" else {"provider_network_type": kind}
    net = conn.network.create_network(project_id=project, name="vx-tenant", **typed)
    other = conn.network.create_network(project_id=project, name="vx-other", **typed)
    group = conn.network.create_security_group(project_id=project, name="vx-icmp", stateful=False)
    port = None
    try:
        subnet = conn.network.create_subnet(
            project_id=project, network_id=net.id, cidr=CIDR, ip_version=4
        )
        net, other = conn.network.get_network(net.id), conn.network.get_network(other.id)
        assert (net.provider_network_type, other.provider_network_type) == (kind, kind)
        conn.network.create_security_group_rule(
            project_id=project,
            security_group_id=group.id,
            direction="ingress",
            ethertype="IPv4",
            protocol="icmp",
            remote_ip_prefix=f"{ALLOWED}/32",
        )
        port = conn.network.create_port(
            project_id=project,
            network_id=net.id,
            name="vx-vm",
            fixed_ips=[{"subnet_id": subnet.id, "ip_address": VM}],
            security_group_ids=[group.id],
        )
        made = Tenant(
            kind,
            int(net.provider_segmentation_id),
            int(other.provider_segmentation_id),
            str(port.id),
            str(group.id),
        )
        assert made.vni != made.other_vni
        made.wire = plumb(bed, kind, made.vni, made.other_vni)
        yield made
    finally:
        unplumb(bed, kind)
        if port is not None:
            conn.network.delete_port(port)
            owner = f"neutron-port-{port.id}"
            wait_for("the owner's removal", lambda: owner not in xdpathd.owners())
        conn.network.delete_security_group(group)
        conn.network.delete_network(net)
        conn.network.delete_network(other)


def check_metrics(bed: QosBed, tenant: Tenant, allow: dict[str, Any], drop: dict[str, Any]) -> None:
    """``/metrics`` names the port (and the allow's group) on the rules'
    hit counters, and the drop counted the denied pings."""
    text = metrics(bed)
    owner = tenant.owner
    for rule, labels in (
        (drop, f'port_id="{tenant.port_id}"'),
        (allow, f'port_id="{tenant.port_id}",security_group_id="{tenant.group_id}"'),
    ):
        line = f'xdpath_rule_hits_total{{rule="{rule["id"]}",owner="{owner}",{labels}}} '
        assert line in text, f"{line} in\n{text}"
    drop_line = f'rule="{drop["id"]}",owner="{owner}",port_id="{tenant.port_id}"}} '
    [count] = [line.split()[-1] for line in text.splitlines() if drop_line in line]
    assert int(count) >= PINGS, count


def unplumb(bed: QosBed, kind: str) -> None:
    for role in ("gw", "ext"):
        subprocess.run(bed.argv(role, "ip", "link", "del", "vxa"), capture_output=True, check=False)
    for role in (f"vm2{kind}", f"t2{kind}"):
        subprocess.run(["ip", "netns", "del", bed.ns(role)], capture_output=True, check=False)


def test_a_ports_rules_match_inside_its_networks_vni(
    compute_agent: Agent, bed: QosBed, tenant: Tenant
) -> None:
    xdpathd = Xdpathd(bed.endpoint, bed.token, timeout=3)
    owner, vni = tenant.owner, tenant.vni
    took = wait_for("the port's rules", lambda: len(owned_rules(xdpathd, owner)) == 3)
    print(f"the port's rules (VNI {vni}) in force {took:.1f} s after the port was made")
    # The group's allow, the DHCP replies Neutron's firewall lets in, the drop.
    allow, dhcp, drop = owned_rules(xdpathd, owner)
    assert (dhcp["action"], dhcp["vni"], dhcp["protocol"], dhcp["dport"]) == (
        "admit", vni, "udp", "68"
    ), dhcp  # fmt: skip
    assert (allow["action"], allow["vni"], allow["sources"], allow["destination"]) == (
        "admit", vni, [f"{ALLOWED}/32"], f"{VM}/32"
    ), allow  # fmt: skip
    assert (drop["action"], drop["vni"], drop["destination"]) == ("drop", vni, f"{VM}/32"), drop
    assert allow["labels"] == {"port_id": tenant.port_id, "security_group_id": tenant.group_id}
    assert drop["labels"] == {"port_id": tenant.port_id}
    if not tenant.wire:
        pytest.skip(
            f"this kernel has no {tenant.kind} devices (ip link add type {tenant.kind}: "
            "Unknown device type): the rules were checked, the traffic is not sent"
        )

    before = hits(xdpathd, owner)
    assert ping(bed, "ext", DENIED, VM) == 0, "the denied inner source, on the port's VNI"
    after_denied = hits(xdpathd, owner)
    assert after_denied["drop"] - before["drop"] == PINGS, (before, after_denied)
    assert ping(bed, "ext", ALLOWED, VM) == PINGS, "the allowed inner source"
    after_allowed = hits(xdpathd, owner)
    assert after_allowed["admit"] - after_denied["admit"] == PINGS, after_allowed
    assert after_allowed["drop"] == after_denied["drop"]
    other = tenant.other_vni
    assert ping(bed, f"t2{tenant.kind}", DENIED, VM) == PINGS, f"the same frames on VNI {other}"
    assert hits(xdpathd, owner) == after_allowed, "no rule of the port saw them"
    check_metrics(bed, tenant, allow, drop)
