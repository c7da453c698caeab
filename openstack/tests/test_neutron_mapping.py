"""Unit tests of neutron-xdpath's mapping and configuration (no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from neutron_xdpath import mapping
from neutron_xdpath.config import ConfigError, load
from neutron_xdpath.mapping import Subject
from neutron_xdpath.segments import Segment


def rule(kind: str, direction: str = "ingress", **values: int) -> dict[str, object]:
    return {"type": kind, "direction": direction, **values}


def test_packet_rate_limit_units_are_neutrons() -> None:
    [limit] = mapping.limits_for(
        "203.0.113.7/32", [rule("packet_rate_limit", max_kpps=1, max_burst_kpps=2)], ["ingress"]
    )
    assert limit == {"per": "dst", "scope": "203.0.113.7/32", "pps": "1000", "burst": "2000"}


def test_bandwidth_is_kilobits_turned_into_bytes() -> None:
    [limit] = mapping.limits_for(
        "2001:db8::7/128",
        [rule("bandwidth_limit", max_kbps=8000, max_burst_kbps=800)],
        ["ingress"],
    )
    assert limit["bps"] == "1000000" and limit["burst_bytes"] == "100000"
    assert limit["scope"] == "2001:db8::7/128"


def test_a_zero_burst_is_left_to_xdpath_and_a_zero_rate_is_no_limit() -> None:
    [limit] = mapping.limits_for(
        "203.0.113.7/32", [rule("packet_rate_limit", max_kpps=3, max_burst_kpps=0)], ["ingress"]
    )
    assert "burst" not in limit
    assert (
        mapping.limits_for("203.0.113.7/32", [rule("bandwidth_limit", max_kbps=0)], ["ingress"])
        == []
    )


def test_both_rule_types_make_one_limit_per_direction() -> None:
    rules = [
        rule("packet_rate_limit", max_kpps=5),
        rule("bandwidth_limit", max_kbps=1000),
        rule("packet_rate_limit", "egress", max_kpps=7),
    ]
    limits = mapping.limits_for("10.0.0.5/32", rules, ["ingress", "egress"])
    assert limits == [
        {"per": "dst", "scope": "10.0.0.5/32", "pps": "5000", "bps": "125000"},
        {"per": "src", "scope": "10.0.0.5/32", "pps": "7000"},
    ]


def test_the_plan_names_each_object_and_reports_what_it_leaves_out() -> None:
    fip = Subject("fip", "f1", ("203.0.113.7",), "p1")
    port = Subject("port", "p-1", ("10.0.0.5", "2001:db8::5"), "p2")
    lost = Subject("fip", "f2", ("203.0.113.8",), "gone")
    policies = {
        "p1": [rule("packet_rate_limit", max_kpps=1), rule("dscp_marking")],
        "p2": [rule("bandwidth_limit", "egress", max_kbps=100)],
    }
    plan = mapping.plan([fip, port, lost], policies, egress=False)
    assert list(plan.documents) == ["neutron-fip-f1"]
    assert plan.policies == {"neutron-fip-f1": "p1"}
    notes = " | ".join(plan.not_enforced)
    assert "dscp_marking rules are not enforced" in notes
    assert "port p-1: egress bandwidth_limit not enforced here" in notes
    assert "QoS policy gone not found" in notes
    with_egress = mapping.plan([port], policies, egress=True)
    limits = with_egress.documents["neutron-port-p-1"]["limits"]
    assert [limit["scope"] for limit in limits] == ["10.0.0.5/32", "2001:db8::5/128"]
    assert all(limit["per"] == "src" for limit in limits)
    # Each limit names its object and policy for Prometheus.
    assert all(limit["labels"] == {"port_id": "p-1", "qos_policy_id": "p2"} for limit in limits)
    [fip_limit] = plan.documents["neutron-fip-f1"]["limits"]
    assert fip_limit["labels"] == {"floating_ip_id": "f1", "qos_policy_id": "p1"}


def test_a_tunnel_networks_port_limits_carry_its_vni() -> None:
    policies = {"p": [rule("packet_rate_limit", max_kpps=1)]}
    ports = [
        Subject("port", "a", ("10.0.0.5",), "p", Segment("geneve", 4242)),
        Subject("port", "b", ("10.0.0.6",), "p", Segment("flat")),
        Subject("port", "c", ("10.0.0.7",), "p", Segment("vlan", 12)),
    ]
    plan = mapping.plan(ports, policies, egress=False)
    [a] = plan.documents["neutron-port-a"]["limits"]
    assert (a["scope"], a["vni"], a["pps"]) == ("10.0.0.5/32", "4242", "1000")
    assert "vni" not in plan.documents["neutron-port-b"]["limits"][0]
    assert "vni" not in plan.documents["neutron-port-c"]["limits"][0]
    assert any(note.startswith("port c: vlan network") for note in plan.not_enforced)


def test_a_ports_limits_cover_its_address_pairs_and_say_what_they_cannot() -> None:
    # The hostile report's OpenStack note: QoS limits did not cover a
    # port's allowed address pairs, so traffic to its VRRP VIP went
    # unlimited. A pair of one address gets a limit like a fixed IP; a
    # prefix pair cannot, and is said.
    from types import SimpleNamespace

    from neutron_xdpath import neutron

    port = SimpleNamespace(
        id="p1", fixed_ips=[{"ip_address": "10.9.0.83"}], binding_host_id="h",
        qos_policy_id="pol", device_owner="compute:nova", network_id="n",
        allowed_address_pairs=[{"ip_address": "10.9.0.100"}, {"ip_address": "10.9.1.0/24"},
                               {"ip_address": "10.9.0.83/32"}],
    )  # fmt: skip
    network = SimpleNamespace(networks=lambda: [], ports=lambda: [port])
    [subject] = neutron._ports(SimpleNamespace(network=network), "h")  # type: ignore[arg-type]
    assert subject.addresses == ("10.9.0.83", "10.9.0.100")
    rules = {"pol": [{"type": "packet_rate_limit", "max_kpps": 2, "direction": "ingress"}]}
    result = mapping.plan([subject], rules, egress=False)
    scopes = [limit["scope"] for limit in result.documents["neutron-port-p1"]["limits"]]
    assert scopes == ["10.9.0.83/32", "10.9.0.100/32"]
    assert result.not_enforced == [
        "port p1: its allowed address pair(s) 10.9.1.0/24 are not limited by xdpath (a limit "
        "of a prefix would hold other ports' and hosts' addresses in it to this port's rate)"
    ]


def test_an_address_two_ports_share_gets_one_limit() -> None:
    # A VRRP VIP as an allowed address pair of two ports on one host: one
    # limit (the first port's), said for the second, not one per port.
    first = Subject("port", "p1", ("10.9.0.83", "10.9.0.100"), "pol")
    second = Subject("port", "p2", ("10.9.0.84", "10.9.0.100"), "pol")
    rules = {"pol": [{"type": "packet_rate_limit", "max_kpps": 2, "direction": "ingress"}]}
    result = mapping.plan([first, second], rules, egress=False)
    scopes = {
        owner: [limit["scope"] for limit in document["limits"]]
        for owner, document in result.documents.items()
    }
    assert scopes == {
        "neutron-port-p1": ["10.9.0.83/32", "10.9.0.100/32"],
        "neutron-port-p2": ["10.9.0.84/32"],
    }
    assert result.not_enforced == [
        "port p2: 10.9.0.100 is limited by port p1's limit (an address both have): "
        "one bucket serves both"
    ]


def test_owner_tags_fit_xdpath_and_only_the_agents_are_its() -> None:
    owner = Subject("port", "6a4c1c52-4f0e-4d7f-9d3e-0b8e1f2a3c4d", (), "p").owner
    assert len(owner) <= 64
    assert mapping.ours(owner, "compute") and mapping.ours("neutron-fip-x", "network")
    for role in ("network", "compute"):
        assert not mapping.ours("octavia-6a4c", role) and not mapping.ours("neutron", role)
    # The hostile report's F5: one agent of each role beside one xdpathd
    # (a network and compute node) must not remove each other's owners.
    assert not mapping.ours(owner, "network")
    assert not mapping.ours("neutron-fip-x", "compute")


class SharedXdpathd:
    """One host's xdpathd, as two agents see it: owners and documents."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {"operator-x": {}}

    def owners(self) -> list[str]:
        return list(self.documents)

    def put_owner(self, owner: str, document: dict[str, Any]) -> bool:
        changed = self.documents.get(owner) != document
        self.documents[owner] = document
        return changed

    def delete_owner(self, owner: str) -> None:
        del self.documents[owner]


def test_a_network_and_a_compute_agent_share_one_xdpathd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hostile report's F5: on a host that is network and compute node
    # each agent removed the other's owners every pass.
    from neutron_xdpath.agent import Agent

    xdpathd = SharedXdpathd()
    agents = {}
    for role, owner in (("network", "neutron-fip-f"), ("compute", "neutron-port-p")):
        ini = tmp_path / f"{role}.ini"
        ini.write_text(
            f"[neutron]\nauth_type = none\nendpoint = http://n\n[agent]\nrole = {role}\n"
        )
        agent = Agent(load(ini), xdpathd=xdpathd)  # type: ignore[arg-type]
        plan = mapping.Plan(documents={owner: {"rules": [{"action": "drop"}]}})
        monkeypatch.setattr(agent, "desired", lambda plan=plan: plan)
        agents[role] = agent
    for agent in agents.values():
        agent.sync_once()
    for _ in range(3):
        for agent in agents.values():
            assert agent.sync_once().deleted == []
            assert set(xdpathd.documents) == {"operator-x", "neutron-fip-f", "neutron-port-p"}
    # Each removes its own when Neutron no longer asks for it.
    monkeypatch.setattr(agents["compute"], "desired", mapping.Plan)
    assert agents["compute"].sync_once().deleted == ["neutron-port-p"]
    assert agents["network"].sync_once().deleted == []
    assert set(xdpathd.documents) == {"operator-x", "neutron-fip-f"}


def test_the_agents_ini(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    ini = tmp_path / "agent.ini"
    ini.write_text(
        f"""[neutron]
auth_type = password
auth_url = http://keystone:5000/v3
username = neutron
password = pw
region_name = RegionOne
[xdpathd]
endpoint = http://10.0.0.1:9000
token_file = {token}
[agent]
role = compute   # comment
host = compute-1
interfaces = eth1, vxlan0
"""
    )
    config = load(ini)
    assert config.neutron.auth == {
        "auth_url": "http://keystone:5000/v3",
        "username": "neutron",
        "password": "pw",
    }
    assert config.neutron.region_name == "RegionOne"
    assert config.token == "secret"
    assert (config.role, config.host, config.interfaces) == (
        "compute",
        "compute-1",
        ("eth1", "vxlan0"),
    )
    assert (config.egress, config.poll_interval) == (False, 2.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\nrole = router\n", "role: 'router' is not one of network, compute"),
        ("[neutron]\nauth_type = none\n", "[neutron] endpoint: needed with auth_type = none"),
        ("[agent]\npoll_interval = soon\n", "poll_interval: 'soon' is not a number"),
        ("[xdpathd]\ntoken_file = /nonexistent/t\n", "token_file /nonexistent/t"),
        # The hostile report's F9: nan made the agent spin, inf crash it.
        ("[agent]\npoll_interval = nan\n", "poll_interval: must be above 0 and at most 86400"),
        ("[agent]\npoll_interval = inf\n", "poll_interval: must be above 0 and at most 86400"),
        ("[agent]\nresync_interval = -inf\n", "resync_interval: must be above 0"),
        ("[xdpathd]\ntimeout = NaN\n", "[xdpathd] timeout: must be above 0"),
        ("[agent]\npoll_interval = 0\n", "poll_interval: must be above 0"),
    ],
)
def test_a_wrong_ini_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    ini = tmp_path / "agent.ini"
    ini.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(ini)


def test_the_qos_driver_refuses_egress_unless_told_and_claims_every_vif_type() -> None:
    from neutron_lib import exceptions as lib_exc

    from neutron_xdpath.qos_driver import XdpathQosDriver

    class Rule:
        rule_type = "packet_rate_limit"
        direction = "egress"

    refusing, accepting = XdpathQosDriver(egress=False), XdpathQosDriver(egress=True)
    with pytest.raises(lib_exc.InvalidInput, match="cannot enforce egress packet_rate_limit"):
        refusing.validate_rule_for_port(None, Rule(), None)
    assert accepting.validate_rule_for_network(None, Rule(), "net")
    Rule.direction = "ingress"
    assert refusing.validate_rule_for_port(None, Rule(), None)
    assert refusing.is_vif_type_compatible("ovs") and refusing.is_vif_type_compatible("vhostuser")
    assert set(refusing.supported_rules) == {"packet_rate_limit", "bandwidth_limit"}
