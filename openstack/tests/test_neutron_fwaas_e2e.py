"""End to end: an FWaaS v2 firewall group through Neutron's API
(openstacksdk; the ``firewall_v2`` plug-in with xdpath's FWaaS driver),
``neutron-xdpath-agent`` as a process of its own (role ``compute``), and a
real xdpathd in a namespace that holds the port's fixed IP
(`testenv.qos_bed`'s ``gw``, standing for the compute node), with TCP and
UDP from two addresses of the "external" namespace. The agent is never
called: what xdpath does is read from xdpathd's API and seen on the wire."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openstack.exceptions
import pytest
from openstack.connection import Connection

from neutron_xdpath.client import Xdpathd
from testenv import NeutronEnv
from testenv.neutron import BOUND_HOST
from testenv.qos_bed import EXT_ADDRESS, QosBed
from testenv.scratch import scratch_bed
from tests.test_neutron_e2e import Agent, running, wait_for
from tests.test_neutron_sg_e2e import (
    ALLOWED_PREFIX,
    listening,
    owned_rules,
    reaches,
    tenant_network,
)

OUTSIDE = "203.0.113.99"  # an address of ext's outside ALLOWED_PREFIX
OPERATOR_SOURCE = "198.51.100.0/24"  # an operator's own rule: it must outlive every pass


@pytest.fixture(scope="module")
def bed() -> Iterator[QosBed]:
    with scratch_bed("xdpath-fwbed-", lambda workdir: QosBed(workdir).build()) as bed:
        bed.run("ext", "ip", "addr", "add", f"{OUTSIDE}/32", "dev", "eth0")
        yield bed


@pytest.fixture(scope="module")
def compute_agent(
    neutron_env: NeutronEnv, bed: QosBed, request: pytest.FixtureRequest
) -> Iterator[Agent]:
    bed.xdpath("filter", "add", "--src", OPERATOR_SOURCE, "--action", "drop")
    with running(Agent(neutron_env, bed, role="compute"), bed, request) as agent:
        yield agent


def vm_port(conn: Connection, project: str, network: Any) -> Any:
    """A VM's port, bound (FWaaS takes bound VM ports only), with no
    security group, and in no firewall group (not the project's default)."""
    port = conn.network.create_port(
        project_id=project,
        network_id=network.id,
        name="vm-fw",
        device_owner="compute:nova",
        binding_host_id=BOUND_HOST,
        port_security_enabled=False,
    )
    for group in conn.network.firewall_groups():
        if port.id in (group.ports or []):
            ports = [p for p in group.ports if p != port.id]
            conn.network.update_firewall_group(group, ports=ports)
    return port


def policy(conn: Connection, project: str, address: str) -> tuple[Any, list[Any]]:
    """The issue's: deny UDP to the port's address, allow TCP 22 from
    ALLOWED_PREFIX (and, implicitly, deny the rest)."""
    rules = [
        conn.network.create_firewall_rule(
            project_id=project, protocol="udp", action="deny", destination_ip_address=address
        ),
        conn.network.create_firewall_rule(
            project_id=project,
            protocol="tcp",
            action="allow",
            source_ip_address=ALLOWED_PREFIX,
            destination_port="22",
        ),
    ]
    made = conn.network.create_firewall_policy(
        project_id=project, name="ssh-only", firewall_rules=[rule.id for rule in rules]
    )
    return made, rules


def test_a_firewall_group_decides_as_fwaas_first_match_does(
    *,
    neutron_env: NeutronEnv,
    compute_agent: Agent,
    bed: QosBed,
) -> None:
    conn: Connection = neutron_env.connection()
    xdpathd = Xdpathd(bed.endpoint, bed.token, timeout=3)
    project = neutron_env.project_id
    net = tenant_network(conn, project, "fw-tenant", "10.2.0.0/24")
    port = vm_port(conn, project, net)
    address = port.fixed_ips[0]["ip_address"]
    owner = f"neutron-port-{port.id}"
    # A rule xdpath cannot enforce is refused by Neutron's API (xdpath's
    # service driver), not accepted to put its group out of force.
    with pytest.raises(openstack.exceptions.BadRequestException, match="xdpath cannot enforce"):
        conn.network.create_firewall_rule(
            project_id=project, protocol="tcp", source_port="1024:65000", action="allow"
        )
    ingress, rules = policy(conn, project, address)
    group = conn.network.create_firewall_group(
        project_id=project, name="web", ingress_firewall_policy_id=ingress.id, ports=[port.id]
    )
    try:
        with listening(bed, address):
            check_enforced(xdpathd, bed, address=address, owner=owner)
            check_restarts_converge(compute_agent, xdpathd, bed, owner=owner)
            rules.append(check_first_match(conn, xdpathd, bed, ingress, rules, owner=owner))
            check_switched_off(conn, xdpathd, bed, group=group, address=address, owner=owner)
    finally:
        conn.network.update_firewall_group(group, ports=[])
        conn.network.delete_firewall_group(group)
        conn.network.delete_firewall_policy(ingress)
        for rule in rules:
            conn.network.delete_firewall_rule(rule)
        conn.network.delete_port(port)
        conn.network.delete_network(net)
    # The operator's rule outlived every pass.
    [operator] = [row for row in xdpathd.call("GET", "/v1/rules") if not row.get("owner")]
    assert operator["sources"] == [OPERATOR_SOURCE], operator


# The group's rules: the two DHCP admits, the policy's three, the deny.
RULES = 6


def check_enforced(xdpathd: Xdpathd, bed: QosBed, *, address: str, owner: str) -> None:
    took = wait_for("the group's rules", lambda: len(owned_rules(xdpathd, owner)) == RULES)
    print(f"the firewall group's rules in force {took:.1f} s after it was made")
    destination = f"{address}/32"
    assert [
        (row["action"], row["sources"], row["destination"], row["protocol"], row["dport"])
        for row in owned_rules(xdpathd, owner)
    ] == [
        # DHCP replies first, as FWaaS lets them in (for any source: the
        # policy's prefix too).
        ("admit", [ALLOWED_PREFIX], destination, "udp", "68"),
        ("admit", [], destination, "udp", "68"),
        ("drop", [ALLOWED_PREFIX], destination, "udp", None),
        ("drop", [], destination, "udp", None),
        ("admit", [ALLOWED_PREFIX], destination, "tcp", "22"),
        ("drop", [], destination, None, None),
    ]

    # TCP 22 from inside the prefix opens; from outside it is dropped.
    assert reaches(bed, address, EXT_ADDRESS), "TCP 22 from the allowed prefix"
    assert not reaches(bed, address, OUTSIDE), "TCP 22 from outside the prefix"
    # UDP from inside the prefix (where TCP 22 is allowed) is dropped, and
    # counted on the deny, which comes first.
    flow = bed.traffic({address: 500.0}, 1.0)[address]
    print(f"UDP to the port: {flow}")
    assert flow["sent"] > 300 and flow["received"] == 0, flow
    _, _, udp_deny, _, allow, drop = owned_rules(xdpathd, owner)
    assert udp_deny["hits"] >= flow["sent"], (udp_deny, flow)
    assert allow["hits"] >= 1, allow
    assert drop["hits"] >= 1, drop  # the SYN from outside


def rule_rows(xdpathd: Xdpathd, owner: str) -> list[tuple[Any, ...]]:
    """The owner's rules as (id, action, sources, destination, protocol,
    ports): what a restart must neither lose nor duplicate nor renumber."""
    return [
        (row["id"], row["action"], row["sources"], row["destination"], row["protocol"],
         row["dport"])
        for row in owned_rules(xdpathd, owner)
    ]  # fmt: skip


def check_restarts_converge(agent: Agent, xdpathd: Xdpathd, bed: QosBed, *, owner: str) -> None:
    """The agent restarted, then xdpathd restarted: the same rules, with
    the same ids, after several of the agent's passes, and the operator's
    rule beside them."""
    before = rule_rows(xdpathd, owner)
    agent.stop()
    agent.start()
    time.sleep(2.0)  # four passes of the agent (poll_interval 0.5 s)
    assert rule_rows(xdpathd, owner) == before, "after the agent's restart"
    bed.stop_xdpathd()
    bed.start_xdpathd()
    time.sleep(2.0)
    assert rule_rows(xdpathd, owner) == before, "after xdpathd's restart"
    operators = [row for row in xdpathd.call("GET", "/v1/rules") if not row.get("owner")]
    assert [row["sources"] for row in operators] == [[OPERATOR_SOURCE]], operators


def udp_arrives(bed: QosBed, address: str) -> float:
    """The share of 300 UDP packets from 203.0.113.1 that reach the port."""
    flow = bed.traffic({address: 300.0}, 1.0)[address]
    return flow["received"] / flow["sent"]


def check_first_match(
    conn: Connection, xdpathd: Xdpathd, bed: QosBed, ingress: Any, rules: list[Any], *, owner: str
) -> Any:
    """ "Allow UDP from ALLOWED_PREFIX" after the UDP deny changes nothing;
    moved before it, UDP from the prefix arrives: the policy's order
    decides, on the wire. Returns the rule made."""
    address = rules[0].destination_ip_address
    udp = conn.network.create_firewall_rule(
        project_id=ingress.project_id,
        protocol="udp",
        action="allow",
        source_ip_address=ALLOWED_PREFIX,
    )
    conn.network.insert_rule_into_policy(ingress, udp, insert_after=rules[1].id)
    wait_for("the allow after the deny", lambda: len(owned_rules(xdpathd, owner)) == RULES + 1)
    assert udp_arrives(bed, address) == 0.0
    conn.network.remove_rule_from_policy(ingress, udp)
    conn.network.insert_rule_into_policy(ingress, udp, insert_before=rules[0].id)
    wait_for(
        "the allow before the deny",
        lambda: owned_rules(xdpathd, owner)[2]["action"] == "admit",  # after the DHCP admits
    )
    share = udp_arrives(bed, address)
    print(f"UDP from the prefix with its allow first: {share:.0%} arrives")
    assert share > 0.95, share
    conn.network.remove_rule_from_policy(ingress, udp)
    wait_for("the policy as it was", lambda: len(owned_rules(xdpathd, owner)) == RULES)
    return udp


def check_switched_off(
    conn: Connection, xdpathd: Xdpathd, bed: QosBed, *, group: Any, address: str, owner: str
) -> None:
    """Disabled: its rules stay (neutron-fwaas's drivers never open a port
    for a disabled group); then the port removed from the group: its rules
    go within seconds."""
    before = rule_rows(xdpathd, owner)
    conn.network.update_firewall_group(group, admin_state_up=False)
    time.sleep(1.5)  # three passes of the agent
    assert rule_rows(xdpathd, owner) == before, "a disabled group's rules stay"
    assert not reaches(bed, address, OUTSIDE), "TCP 22 from outside, the group disabled"
    conn.network.update_firewall_group(group, admin_state_up=True)
    conn.network.update_firewall_group(group, ports=[])
    removed = time.monotonic()
    wait_for("the rules' removal (port left the group)", lambda: owner not in xdpathd.owners())
    assert reaches(bed, address, OUTSIDE), "TCP 22 from anywhere, with no firewall group"
    print(f"the rules gone {time.monotonic() - removed:.1f} s after the port left the group")
