"""Unit tests of stateless security groups as xdpath rules (no services)."""

from __future__ import annotations

from typing import Any

import pytest

from neutron_xdpath import mapping
from neutron_xdpath.secgroups import Groups, Port, Unexpressible, port_rules, rules_for
from neutron_xdpath.segments import Segment, of_network

# What is said of every port with an IPv4 or IPv6 address (its DHCP admit).
DHCP_NOTE = "the source port of DHCP replies (67, 547) is not checked"


def ingress(**values: Any) -> dict[str, Any]:
    return {"direction": "ingress", "ethertype": "IPv4", **values}


def dhcp(address: str, **extra: Any) -> dict[str, Any]:
    """The DHCP-reply admit every stateless port's IPv4 address gets."""
    return {"dst": f"{address}/32", "action": "admit", "proto": "udp", "dport": "68", **extra}


def test_allows_then_the_drop_in_the_address_family() -> None:
    rules = [
        ingress(protocol="tcp", port_range_min=22, port_range_max=22,
                remote_ip_prefix="198.51.100.0/24"),
        ingress(protocol="udp", port_range_min=1000, port_range_max=2000),
        ingress(protocol="icmp", remote_ip_prefix="0.0.0.0/0"),
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp"},
        {"direction": "egress", "ethertype": "IPv4"},
    ]  # fmt: skip
    assert rules_for("10.0.0.5", rules, Groups()) == [
        {"dst": "10.0.0.5/32", "action": "admit", "src": ["198.51.100.0/24"], "proto": "tcp",
         "dport": "22"},
        {"dst": "10.0.0.5/32", "action": "admit", "proto": "udp", "dport": "1000-2000"},
        {"dst": "10.0.0.5/32", "action": "admit", "proto": "icmp"},
        {"dst": "10.0.0.5/32", "action": "drop"},
    ]  # fmt: skip
    assert rules_for("2001:db8::5", rules, Groups()) == [
        {"dst": "2001:db8::5/128", "action": "admit", "proto": "tcp"},
        {"dst": "2001:db8::5/128", "action": "drop"},
    ]


def test_remote_groups_and_address_groups_expand_to_their_members() -> None:
    groups = Groups(
        members={"web": ["10.0.0.7", "10.0.0.8", "2001:db8::8"]},
        address_groups={"office": ["192.0.2.0/25", "2001:db8:1::/48"]},
    )
    rules = [
        ingress(protocol="tcp", port_range_min=80, port_range_max=80, remote_group_id="web"),
        ingress(protocol="6", remote_address_group_id="office"),
        ingress(remote_group_id="empty"),
    ]
    assert rules_for("10.0.0.5", rules, groups)[:2] == [
        {"dst": "10.0.0.5/32", "action": "admit", "src": ["10.0.0.7/32", "10.0.0.8/32"],
         "proto": "tcp", "dport": "80"},
        {"dst": "10.0.0.5/32", "action": "admit", "src": ["192.0.2.0/25"], "proto": "6"},
    ]  # fmt: skip
    # A group with no member in the family allows nothing: left out.
    assert len(rules_for("10.0.0.5", rules, groups)) == 3


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        (ingress(protocol="icmp", port_range_max=0), "ICMP code 0 without a type"),
        (ingress(protocol="icmp", port_range_min=256), "ICMP type 256"),
        (ingress(protocol="icmp", port_range_min=3, port_range_max=300), "ICMP code 300"),
        (ingress(protocol="sctp", port_range_min=5, port_range_max=5), "port range"),
        (ingress(protocol="ospf"), "protocol ospf"),
    ],
)
def test_what_xdpath_cannot_express_is_refused(rule: dict[str, Any], why: str) -> None:
    with pytest.raises(Unexpressible, match=why):
        rules_for("10.0.0.5", [rule], Groups())


def test_icmp_type_and_code_become_the_rules_icmp_type() -> None:
    rules = [
        ingress(protocol="icmp", port_range_min=8, port_range_max=0),
        ingress(protocol="icmp", port_range_min=3, remote_ip_prefix="192.0.2.0/24"),
        ingress(protocol="1", port_range_min=0),
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp",
         "port_range_min": 128},
        # Neutron reads "icmp" on IPv6 as ICMPv6.
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp",
         "port_range_min": 1, "port_range_max": 4},
    ]  # fmt: skip
    assert rules_for("10.0.0.5", rules, Groups()) == [
        {"dst": "10.0.0.5/32", "action": "admit", "src": ["192.0.2.0/24"], "proto": "icmp",
         "icmp_type": "3"},
        {"dst": "10.0.0.5/32", "action": "admit", "proto": "icmp", "icmp_type": "8/0"},
        {"dst": "10.0.0.5/32", "action": "admit", "proto": "1", "icmp_type": "0"},
        {"dst": "10.0.0.5/32", "action": "drop"},
    ]  # fmt: skip
    assert rules_for("2001:db8::5", rules, Groups()) == [
        {"dst": "2001:db8::5/128", "action": "admit", "proto": "icmpv6", "icmp_type": "128"},
        {"dst": "2001:db8::5/128", "action": "admit", "proto": "icmpv6", "icmp_type": "1/4"},
        {"dst": "2001:db8::5/128", "action": "drop"},
    ]  # fmt: skip


def test_too_many_sourceless_allows_for_one_chain_are_refused() -> None:
    rules = [ingress(protocol="tcp", port_range_min=p, port_range_max=p) for p in range(1, 9)]
    with pytest.raises(Unexpressible, match="at most 7"):
        rules_for("10.0.0.5", rules, Groups())
    assert len(rules_for("10.0.0.5", rules[:7], Groups())) == 8


def test_ports_stateful_groups_and_egress_are_reported_not_half_enforced() -> None:
    groups = Groups(
        stateful={"sl": False, "sf": True, "out": False},
        rules={
            "sl": [ingress(protocol="tcp", port_range_min=22, port_range_max=22),
                   {"direction": "egress", "ethertype": "IPv4"}],
            "out": [{"direction": "egress", "ethertype": "IPv4", "protocol": "udp"}],
        },
    )  # fmt: skip
    result = port_rules(
        [
            Port("a", ("10.0.0.5",), ("sl",)),
            Port("b", ("10.0.0.6",), ("sl", "sf")),
            Port("c", ("10.0.0.7",), ("out",)),
            Port("d", ("10.0.0.8",), ()),
        ],
        groups,
    )
    assert set(result.rules) == {"a", "c"}
    assert result.rules["c"] == [
        {"dst": "10.0.0.7/32", "action": "admit", "proto": "udp", "dport": "68",
         "labels": {"port_id": "c"}},
        {"dst": "10.0.0.7/32", "action": "drop", "labels": {"port_id": "c"}},
    ]  # fmt: skip
    notes = " | ".join(note for note in result.not_enforced if DHCP_NOTE not in note)
    assert "port b: security group(s) sf stateful: not handled" in notes
    assert "port c: egress security group rules are not enforced" in notes
    assert "port a" not in notes, "Neutron's default allow-every-egress needs nothing"


def test_rules_join_the_ports_limits_in_one_document() -> None:
    plan = mapping.Plan(documents={"neutron-port-a": {"limits": [{"pps": "1"}]}})
    result = port_rules(
        [Port("a", ("10.0.0.5",), ("sl",)), Port("b", ("10.0.0.6",), ("sl",))],
        Groups(stateful={"sl": False}, rules={"sl": []}),
    )
    mapping.add_rules(plan, result)
    assert plan.documents["neutron-port-a"] == {
        "limits": [{"pps": "1"}],
        "rules": [
            dhcp("10.0.0.5", labels={"port_id": "a"}),
            {"dst": "10.0.0.5/32", "action": "drop", "labels": {"port_id": "a"}},
        ],
    }
    assert plan.documents["neutron-port-b"] == {
        "rules": [
            dhcp("10.0.0.6", labels={"port_id": "b"}),
            {"dst": "10.0.0.6/32", "action": "drop", "labels": {"port_id": "b"}},
        ]
    }
    assert not any("QoS limits" in note for note in plan.not_enforced), plan.not_enforced


def test_a_tunnel_networks_rules_carry_its_vni_and_name_port_and_group() -> None:
    groups = Groups(
        stateful={"g1": False, "g2": False},
        rules={
            "g1": [ingress(protocol="icmp", remote_ip_prefix="192.168.1.3/32",
                           security_group_id="g1")],
            # The same allow from a second group: once, named by the first.
            "g2": [ingress(protocol="icmp", remote_ip_prefix="192.168.1.3/32",
                           security_group_id="g2")],
        },
    )  # fmt: skip
    tunnelled = Port("p", ("10.1.0.5",), ("g1", "g2"), Segment("vxlan", 1042))
    flat = Port("q", ("10.2.0.5",), ("g1",), Segment("flat"))
    vlan = Port("v", ("10.3.0.5",), ("g1",), Segment("vlan", 100))
    result = port_rules([tunnelled, flat, vlan], groups)
    assert result.rules["p"] == [
        {"dst": "10.1.0.5/32", "action": "admit", "src": ["192.168.1.3/32"], "proto": "icmp",
         "vni": "1042", "labels": {"port_id": "p", "security_group_id": "g1"}},
        dhcp("10.1.0.5", vni="1042", labels={"port_id": "p"}),
        {"dst": "10.1.0.5/32", "action": "drop", "vni": "1042", "labels": {"port_id": "p"}},
    ]  # fmt: skip
    assert all("vni" not in rule for rule in result.rules["q"] + result.rules["v"])
    notes = " | ".join(note for note in result.not_enforced if DHCP_NOTE not in note)
    assert "port v: vlan network (segment 100)" in notes
    assert "port p" not in notes and "port q" not in notes


@pytest.mark.parametrize(
    ("network", "vni", "noted"),
    [
        ({"provider_network_type": "vxlan", "provider_segmentation_id": 1001}, 1001, False),
        ({"provider_network_type": "geneve", "provider_segmentation_id": "7"}, 7, False),
        ({"provider_network_type": "vlan", "provider_segmentation_id": 100}, None, True),
        ({"provider_network_type": "flat", "provider_segmentation_id": None}, None, False),
        ({"segments": [{"provider:network_type": "vlan", "provider:segmentation_id": 5},
                       {"provider:network_type": "geneve", "provider:segmentation_id": 9}]},
         9, False),
        ({"segments": [{"provider:network_type": "vxlan", "provider:segmentation_id": 5},
                       {"provider:network_type": "vxlan", "provider:segmentation_id": 6}]},
         None, True),
        ({}, None, False),
    ],
)  # fmt: skip
def test_a_networks_segment_gives_the_vni(network: dict[str, Any], vni: int, noted: bool) -> None:
    segment = of_network(network)
    assert segment.vni == vni
    assert (segment.note("port x") is not None) == noted


def test_what_neutrons_firewall_always_lets_in_is_admitted() -> None:
    # The hostile report's F4: a stateless group "allow TCP 22" dropped the
    # unicast neighbour advertisements and DHCP replies Neutron's firewall
    # drivers let in to every port (IPv6 neighbour discovery broke).
    groups = Groups(
        stateful={"ssh": False},
        rules={"ssh": [
            ingress(protocol="tcp", port_range_min=22, port_range_max=22),
            {"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp",
             "port_range_min": 22, "port_range_max": 22},
        ]},
    )  # fmt: skip
    result = port_rules([Port("p", ("10.7.0.5", "2001:db8:7::280"), ("ssh",))], groups)
    v6 = "2001:db8:7::280/128"
    assert [{k: v for k, v in r.items() if k != "labels"} for r in result.rules["p"]] == [
        {"dst": "10.7.0.5/32", "action": "admit", "proto": "tcp", "dport": "22"},
        dhcp("10.7.0.5"),
        {"dst": "10.7.0.5/32", "action": "drop"},
        {"dst": v6, "action": "admit", "proto": "tcp", "dport": "22"},
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "135"},
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "136"},
        {"dst": v6, "action": "admit", "proto": "udp", "dport": "546"},
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "134"},
        {"dst": v6, "action": "drop"},
    ]
    # Only the source port (67, 547) is not checked: said.
    assert result.not_enforced == [
        "port p: the source port of DHCP replies (67, 547) is not checked: UDP to port 68 "
        "and 546 is admitted from any source port (xdpath rules match no source port)"
    ]


def test_fixed_admits_an_allow_covers_take_no_room_and_the_rest_are_dropped_and_said() -> None:
    icmpv6 = {"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp"}
    # Every ICMPv6 and UDP 500-600 allowed: nothing more is needed.
    groups = Groups(
        stateful={"g": False},
        rules={"g": [icmpv6, {**icmpv6, "protocol": "udp", "port_range_min": 500,
                              "port_range_max": 600}]},
    )  # fmt: skip
    result = port_rules([Port("p", ("2001:db8::5",), ("g",))], groups)
    assert len(result.rules["p"]) == 3
    assert not any(DHCP_NOTE in note for note in result.not_enforced)
    # Five source-less allows: room for two of the four (the chain holds 8).
    many = [{**icmpv6, "protocol": "tcp", "port_range_min": p, "port_range_max": p}
            for p in range(1, 6)]  # fmt: skip
    result = port_rules([Port("p", ("2001:db8::5",), ("g",))], Groups({"g": False}, {"g": many}))
    types = [r.get("icmp_type") for r in result.rules["p"] if r.get("proto") == "icmpv6"]
    assert types == ["135", "136"]
    assert len(result.rules["p"]) == 8
    assert (
        "port p: DHCPv6 replies, router advertisements to 2001:db8::5 are dropped, which "
        "Neutron's firewall lets in: the groups' allows fill the address's 7 rules for any "
        "source"
    ) in result.not_enforced


def test_allowed_address_pairs_get_the_ports_rules_and_count_in_remote_groups() -> None:
    # The hostile report's F10: a port's allowed address pairs (a VRRP VIP)
    # met no rule of the port, and a member's pair address was not in its
    # remote group.
    from types import SimpleNamespace

    from neutron_xdpath import neutron
    from neutron_xdpath.config import AgentConfig, NeutronSettings

    def port(name: str, fixed: str, pairs: list[str]) -> SimpleNamespace:
        return SimpleNamespace(
            id=name, fixed_ips=[{"ip_address": fixed}], binding_host_id="h",
            security_group_ids=[name], device_owner="compute:nova", network_id="n",
            allowed_address_pairs=[{"ip_address": p, "mac_address": "fa:16:3e:00:00:01"}
                                   for p in pairs],
        )  # fmt: skip

    ports = [
        port("vm", "10.9.0.83", ["10.9.0.100", "10.9.1.0/24", "10.9.0.83/32", "2001:db8::7/128"]),
        port("web", "10.9.0.5", ["10.9.5.0/28"]),
    ]
    ssh = [ingress(protocol="tcp", port_range_min=22, port_range_max=22, remote_group_id="web")]
    network = SimpleNamespace(
        ports=lambda: ports,
        networks=lambda: [],
        security_groups=lambda: [
            SimpleNamespace(id="vm", stateful=False, security_group_rules=ssh),
            SimpleNamespace(id="web", stateful=False, security_group_rules=[]),
        ],
    )
    config = AgentConfig(NeutronSettings("none", "http://n", None, {}, None, None), "unix:x",
                         None, 5.0, "compute", (), "h", False, 2.0, 60.0)  # fmt: skip
    found, groups = neutron.security_groups(SimpleNamespace(network=network), config)  # type: ignore[arg-type]
    vm = found[0]
    # Address pairs are the port's addresses; a prefix pair is reported.
    assert vm.addresses == ("10.9.0.83", "10.9.0.100", "2001:db8::7")
    assert vm.unfiltered == ("10.9.1.0/24",)
    assert groups.members["web"] == ["10.9.0.5", "10.9.5.0/28"]
    result = port_rules(found, groups)
    rules = [{k: v for k, v in r.items() if k != "labels"} for r in result.rules["vm"]]
    for address in ("10.9.0.83", "10.9.0.100"):
        assert [r for r in rules if r["dst"] == f"{address}/32"] == [
            {"dst": f"{address}/32", "action": "admit", "src": ["10.9.0.5/32", "10.9.5.0/28"],
             "proto": "tcp", "dport": "22"},
            dhcp(address),
            {"dst": f"{address}/32", "action": "drop"},
        ]  # fmt: skip
    assert not any(r["dst"] == "10.9.1.0/24" for r in rules)
    assert (
        "port vm: its allowed address pair(s) 10.9.1.0/24 are not filtered by xdpath (it "
        "matches frames by destination address, and a prefix holds other ports' and hosts' "
        "addresses)"
    ) in result.not_enforced


def test_an_address_two_ports_share_is_filtered_by_one_ports_rules() -> None:
    # A VRRP VIP as an allowed address pair of two ports on one host, with
    # different groups: both ports' rules for it made one chain, where the
    # first port's final drop ended the walk before the second's allows
    # (and two ports' rules overflowed the chain's 8 and got a document
    # refused). Now the first port (by id) filters it, the other says so.
    from types import SimpleNamespace

    from neutron_xdpath import neutron
    from neutron_xdpath.config import AgentConfig, NeutronSettings

    def port(name: str, fixed: str) -> SimpleNamespace:
        return SimpleNamespace(
            id=name, fixed_ips=[{"ip_address": fixed}], binding_host_id="h",
            security_group_ids=[name], device_owner="compute:nova", network_id="n",
            allowed_address_pairs=[{"ip_address": "10.9.0.100"}],
        )  # fmt: skip

    ports = [port("b", "10.9.0.6"), port("a", "10.9.0.5")]
    web = [ingress(protocol="tcp", port_range_min=80, port_range_max=80)]
    ssh = [ingress(protocol="tcp", port_range_min=22, port_range_max=22)]
    network = SimpleNamespace(
        ports=lambda: ports,
        networks=lambda: [],
        security_groups=lambda: [
            SimpleNamespace(id="a", stateful=False, security_group_rules=web),
            SimpleNamespace(id="b", stateful=False, security_group_rules=ssh),
        ],
    )
    config = AgentConfig(NeutronSettings("none", "http://n", None, {}, None, None), "unix:x",
                         None, 5.0, "compute", (), "h", False, 2.0, 60.0)  # fmt: skip
    found, groups = neutron.security_groups(SimpleNamespace(network=network), config)  # type: ignore[arg-type]
    result = port_rules(found, groups)
    to_vip = [r for r in result.rules["b"] if r["dst"] == "10.9.0.100/32"]
    assert to_vip == []
    assert [r.get("dport") for r in result.rules["a"] if r["dst"] == "10.9.0.100/32"] == [
        "80", "68", None,
    ]  # fmt: skip
    assert (
        "port b: 10.9.0.100 is filtered by port a's rules (an address both have: xdpath "
        "matches by destination, one port's rules for it)"
    ) in result.not_enforced
    # A first port whose groups are not enforced (stateful) claims nothing:
    # the second port's rules filter the address.
    groups.stateful["a"] = True
    result = port_rules(found, groups)
    assert "a" not in result.rules
    assert [r.get("dport") for r in result.rules["b"] if r["dst"] == "10.9.0.100/32"] == [
        "22", "68", None,
    ]  # fmt: skip
    assert not any("is filtered by port" in note for note in result.not_enforced)
