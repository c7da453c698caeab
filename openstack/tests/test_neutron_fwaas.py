"""Unit tests of FWaaS v2 firewall groups as xdpath rules (no services).

`xdpath_verdict` evaluates rules the way xdpath's filter does (each
source prefix's chain: its own rules in list order, then its covering
prefix's chain, deduplicated; the longest matching source prefix's chain,
then the longest matching destination prefix's); `fwaas_verdict` is
FWaaS's first match with the implicit deny. The mapping is right when both
agree on every frame of a grid."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from neutron_xdpath.fwaas import Clause, FirewallGroup, intersect, port_rules
from neutron_xdpath.secgroups import Groups, Port, PortRules
from neutron_xdpath.secgroups import port_rules as sg_port_rules
from neutron_xdpath.segments import Segment

ADDRESS = "10.0.0.5"
DENY_ALL = [
    {"dst": f"{ADDRESS}/32", "action": "admit", "proto": "udp", "dport": "68"},
    {"dst": f"{ADDRESS}/32", "action": "drop"},
]
DHCP_NOTE = (
    "port p1: the source port of DHCP replies (67, 547) is not checked: UDP to port 68 is "
    "admitted from any source port (xdpath rules match no source port)"
)
PORT = Port("p1", (ADDRESS,), ())
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
# source, destination, protocol, destination port (an ICMP frame's: its type)
Frame = tuple[str, str, str, int]


def rule(action: str, **values: Any) -> dict[str, Any]:
    return {"action": action, "enabled": True, "ip_version": 4, **values}


def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


def _in(address: str, prefix: str) -> bool:
    return ipaddress.ip_address(address) in _net(prefix)


def _ports_match(spec: str | None, port: int) -> bool:
    if not spec:
        return True
    low, _, high = spec.replace(":", "-").partition("-")
    return int(low) <= port <= int(high or low)


def _xdpath_matches(rule: Mapping[str, Any], frame: Frame) -> bool:
    _, destination, protocol, port = frame
    icmp_type = rule.get("icmp_type")
    return (
        _in(destination, rule["dst"])
        and rule.get("proto") in (None, protocol)
        and _ports_match(rule.get("dport"), port)
        and (icmp_type is None or (protocol == "icmp" and int(icmp_type) == port))
    )


def _chains(rules: Sequence[Mapping[str, Any]], key: str) -> dict[str, list[int]]:
    """Each prefix's chain of rule indexes, as xdpath's compiler builds it."""
    own: dict[str, list[int]] = {}
    for index, each in enumerate(rules):
        # A rule with a source sits in the source trie, one without in the
        # destination trie.
        in_trie = ("src" in each) == (key == "src")
        for prefix in (each.get("src") or [each["dst"]]) if in_trie else []:
            own.setdefault(prefix, []).append(index)
    chains: dict[str, list[int]] = {}
    for prefix in sorted(own, key=lambda p: _net(p).prefixlen):
        covering = [
            p
            for p in chains
            if _net(prefix).subnet_of(_net(p))  # type: ignore[arg-type]
        ]
        parent = max(covering, key=lambda p: _net(p).prefixlen) if covering else None
        chain = list(own[prefix])
        chain += [i for i in chains.get(parent, []) if i not in chain] if parent else []
        assert len(chain) <= 8, f"{prefix} leads to {len(chain)} rules"
        chains[prefix] = chain
    return chains


def xdpath_verdict(rules: Sequence[Mapping[str, Any]], frame: Frame) -> str | None:
    for key, address in (("src", frame[0]), ("dst", frame[1])):
        chains = _chains(rules, key)
        matching = [p for p in chains if _in(address, p)]
        if not matching:
            continue
        longest = max(matching, key=lambda p: _net(p).prefixlen)
        for index in chains[longest]:
            if _xdpath_matches(rules[index], frame):
                return str(rules[index]["action"])
    return None


def fwaas_verdict(policy: Sequence[Mapping[str, Any]], frame: Frame) -> str:
    source, destination, protocol, port = frame
    if protocol == "udp" and port == 68:
        return "admit"  # the FWaaS driver's DHCP replies, before the policy
    for each in policy:
        if not each["enabled"]:
            continue
        if each.get("source_ip_address") and not _in(source, each["source_ip_address"]):
            continue
        if each.get("destination_ip_address") and not _in(
            destination, each["destination_ip_address"]
        ):
            continue
        if each.get("protocol") not in (None, protocol):
            continue
        if not _ports_match(each.get("destination_port"), port):
            continue
        return "admit" if each["action"] == "allow" else "drop"
    return "drop"


SOURCES = ["10.1.2.3", "10.1.9.9", "10.200.0.1", "192.0.2.1", "203.0.113.1", "203.0.113.99"]
FRAMES = [
    (source, ADDRESS, protocol, port)
    for source, protocol, port in itertools.product(SOURCES, PROTOCOLS, (8, 13, 22, 68, 80, 1500))
]


def enforced(policy: Sequence[Mapping[str, Any]], security: PortRules | None = None) -> PortRules:
    group = FirewallGroup("g1", (PORT.id,), tuple(policy))
    return port_rules([PORT], [group], security or PortRules())


POLICIES = {
    "the issue's: deny UDP to the port, allow TCP 22 from a prefix": [
        rule("deny", protocol="udp", destination_ip_address=ADDRESS),
        rule("allow", protocol="tcp", destination_port="22",
             source_ip_address="203.0.113.0/28"),
    ],
    "a broader allow before a narrower deny": [
        rule("allow", protocol="tcp", source_ip_address="10.0.0.0/8"),
        rule("deny", source_ip_address="10.1.0.0/16"),
        rule("allow", protocol="udp"),
    ],
    "a narrower deny before a broader allow": [
        rule("deny", protocol="tcp", source_ip_address="10.1.0.0/16", destination_port="22"),
        rule("allow", source_ip_address="10.0.0.0/8"),
    ],
    "any source before a sourced rule, and after": [
        rule("deny", protocol="tcp", destination_port="80"),
        rule("allow", source_ip_address="10.1.2.0/24"),
        rule("allow", protocol="udp", destination_port="1000:2000"),
        rule("deny", source_ip_address="10.1.0.0/16"),
        rule("allow", protocol="tcp"),
    ],
    "disabled, other destinations, other families, reject": [
        rule("allow", enabled=False),
        rule("allow", destination_ip_address="10.0.0.6"),
        rule("allow", ip_version=6, source_ip_address="2001:db8::/32"),
        rule("reject", protocol="udp", source_ip_address="192.0.2.0/24"),
        rule("allow", destination_ip_address="10.0.0.0/24", source_ip_address="192.0.0.0/8"),
        rule("allow", protocol="tcp", destination_port="0:65535", source_port="1:65535"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", list(POLICIES))
def test_xdpath_decides_every_frame_as_fwaas_first_match_does(name: str) -> None:
    policy = POLICIES[name]
    rules = enforced(policy).rules[PORT.id]
    for frame in FRAMES:
        assert xdpath_verdict(rules, frame) == fwaas_verdict(policy, frame), (frame, rules)


def unlabelled(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rules without their Prometheus labels."""
    return [{key: value for key, value in rule.items() if key != "labels"} for rule in rules]


def test_the_issue_policy_as_rules() -> None:
    result = enforced(POLICIES["the issue's: deny UDP to the port, allow TCP 22 from a prefix"])
    destination = f"{ADDRESS}/32"
    labels = {"port_id": PORT.id, "firewall_group_id": "g1"}
    assert all(rule["labels"] == labels for rule in result.rules[PORT.id])
    assert unlabelled(result.rules[PORT.id]) == [
        # DHCP replies first, as FWaaS lets them in.
        {"dst": destination, "action": "admit", "proto": "udp", "dport": "68",
         "src": ["203.0.113.0/28"]},
        {"dst": destination, "action": "admit", "proto": "udp", "dport": "68"},
        {"dst": destination, "action": "drop", "proto": "udp", "src": ["203.0.113.0/28"]},
        {"dst": destination, "action": "drop", "proto": "udp"},
        {"dst": destination, "action": "admit", "proto": "tcp", "dport": "22",
         "src": ["203.0.113.0/28"]},
        {"dst": destination, "action": "drop"},
    ]  # fmt: skip
    assert result.not_enforced == [DHCP_NOTE]


def test_a_security_group_too_lets_in_only_what_both_allow() -> None:
    groups = Groups(
        stateful={"sg": False},
        rules={
            "sg": [
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                 "port_range_min": 20, "port_range_max": 80, "remote_ip_prefix": "10.1.0.0/16"},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "udp"},
                # Echo requests only: a firewall allow must not widen it to
                # every ICMP type.
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
                 "port_range_min": 8, "remote_ip_prefix": "10.0.0.0/8"},
            ]
        },
    )  # fmt: skip
    port = Port(PORT.id, PORT.addresses, ("sg",))
    security = sg_port_rules([port], groups)
    for name, policy in POLICIES.items():
        group = FirewallGroup("g1", (PORT.id,), tuple(policy))
        rules = port_rules([port], [group], security).rules[PORT.id]
        for frame in FRAMES:
            both = (
                fwaas_verdict(policy, frame)
                == "admit"
                == xdpath_verdict(security.rules[PORT.id], frame)
            )
            assert xdpath_verdict(rules, frame) == ("admit" if both else "drop"), (name, frame)


def test_an_allow_all_firewall_keeps_the_security_groups_icmp_type() -> None:
    # The hostile report's F1: an SG allowing echo requests only, and a
    # firewall group allowing everything: only echo requests may enter.
    groups = Groups(
        stateful={"sg": False},
        rules={"sg": [{"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
                       "port_range_min": 8, "port_range_max": None}]},
    )  # fmt: skip
    port = Port(PORT.id, PORT.addresses, ("sg",))
    security = sg_port_rules([port], groups)
    group = FirewallGroup("fw", (PORT.id,), (rule("allow"),))
    rules = unlabelled(port_rules([port], [group], security).rules[PORT.id])
    assert rules == [
        # What both Neutron's and FWaaS's drivers let in (DHCP replies).
        {"dst": f"{ADDRESS}/32", "action": "admit", "proto": "udp", "dport": "68"},
        {"dst": f"{ADDRESS}/32", "action": "admit", "proto": "icmp", "icmp_type": "8"},
        {"dst": f"{ADDRESS}/32", "action": "drop"},
    ]


@pytest.mark.parametrize(
    ("firewall", "security", "expected"),
    [
        # Type only against type/code: the code narrows it.
        ({"protocol": "icmp"}, {"port_range_min": 3, "port_range_max": 4}, "3/4"),
        # Protocols named and numbered are the same protocol.
        ({"protocol": "1"}, {"port_range_min": 8}, "8"),
        # An allow of any protocol takes the group's type.
        ({}, {"port_range_min": 0}, "0"),
    ],
)
def test_icmp_types_intersect(
    firewall: dict[str, Any], security: dict[str, Any], expected: str
) -> None:
    sg = {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp", **security}
    port = Port(PORT.id, PORT.addresses, ("sg",))
    rules = sg_port_rules([port], Groups(stateful={"sg": False}, rules={"sg": [sg]}))
    group = FirewallGroup("fw", (PORT.id,), (rule("allow", **firewall),))
    [admit] = [r for r in port_rules([port], [group], rules).rules[PORT.id] if "icmp_type" in r]
    assert admit["icmp_type"] == expected


def test_different_icmp_types_do_not_intersect() -> None:
    echo = Clause(None, "icmp", None, "admit", "8")
    assert intersect(echo, Clause(None, "icmp", None, "admit", "13")) is None
    assert intersect(Clause(None, "1", None, "admit", "3/4"), echo) is None
    assert intersect(Clause(None, "1", None, "admit", "3/4"),
                     Clause(None, "icmp", None, "admit", "3/1")) is None  # fmt: skip
    assert intersect(echo, Clause(None, "icmp", None, "admit", "8/0")) == Clause(
        None, "icmp", None, "admit", "8/0"
    )
    assert intersect(echo, Clause(None, "tcp", None, "admit")) is None


def test_reject_is_enforced_as_drop_and_said() -> None:
    result = enforced([rule("reject", protocol="udp")])
    assert [r["action"] for r in result.rules[PORT.id]] == ["admit", "drop", "drop"]
    assert result.not_enforced == [
        DHCP_NOTE,
        "port p1: firewall group g1: reject enforced as drop (XDP sends no ICMP or TCP reset)",
    ]


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        ([rule("allow", source_port="1024:65535")], "source port 1024:65535"),
        ([rule("deny", protocol="tcp", source_ip_address="10.0.0.0/8",
               destination_port=str(p)) for p in range(1, 10)],
         "9 rules for sources in 10.0.0.0/8 (at most 8)"),
        ([rule("deny", protocol="tcp", destination_port=str(p)) for p in range(1, 9)],
         f"9 rules for any source to {ADDRESS}/32 (at most 8)"),
        ([rule("allow", protocol="gopher")], "protocol gopher"),
    ],
)  # fmt: skip
def test_what_xdpath_cannot_express_is_refused_for_the_port(
    policy: list[dict[str, Any]], why: str
) -> None:
    security = PortRules(rules={PORT.id: [{"dst": f"{ADDRESS}/32", "action": "admit"}]})
    result = enforced(policy, security)
    # The hostile report's F12: not the security group's rules (which would
    # let in what the group may deny) but everything denied, but what FWaaS
    # always lets in: at least as strict as any policy.
    assert unlabelled(result.rules[PORT.id]) == DENY_ALL
    [note, dhcp] = result.not_enforced
    assert note.startswith("port p1: firewall group g1 is not enforced: "), note
    assert why in note, note
    assert note.endswith(
        "; everything to the port is dropped (but neighbour discovery and DHCP replies) "
        "until it can be"
    ), note
    assert dhcp == DHCP_NOTE


def test_disabled_groups_and_groups_without_ingress_policy_do_not_open_the_port() -> None:
    # The hostile report's F8: neutron-fwaas's drivers never open a port for
    # a disabled group (the VM ports' agent keeps its rules) nor for one
    # without ingress policy (default deny); xdpath let everything in.
    security = PortRules(rules={"p2": [{"dst": "10.0.0.9/32", "action": "drop"}]})
    groups = [
        FirewallGroup("down", (PORT.id,), (rule("deny", protocol="udp"),), admin_state_up=False),
        FirewallGroup("egress-only", ("p2",), None, egress=True),
    ]
    result = port_rules([PORT, Port("p2", ("10.0.0.9",), ())], groups, security)
    dhcp = {"action": "admit", "proto": "udp", "dport": "68"}
    # Disabled: its rules stay, said.
    assert unlabelled(result.rules[PORT.id]) == [
        {"dst": f"{ADDRESS}/32", **dhcp},
        {"dst": f"{ADDRESS}/32", "action": "drop", "proto": "udp"},
        {"dst": f"{ADDRESS}/32", "action": "drop"},
    ]
    # No ingress policy: everything denied but what FWaaS always lets in;
    # the egress policy reported.
    assert unlabelled(result.rules["p2"]) == [
        {"dst": "10.0.0.9/32", **dhcp},
        {"dst": "10.0.0.9/32", "action": "drop"},
    ]
    assert (
        "port p1: firewall group down is disabled (admin_state_up false): its rules stay in "
        "force, as neutron-fwaas's drivers keep them"
    ) in result.not_enforced
    assert (
        "port p2: the egress policy of firewall group egress-only is not enforced by xdpath "
        "(it sees the traffic that comes to the port)"
    ) in result.not_enforced


def test_a_policy_not_readable_is_refused() -> None:
    group = FirewallGroup("g1", (PORT.id,), (), problem="its ingress policy x cannot be read")
    result = port_rules([PORT], [group], PortRules())
    assert unlabelled(result.rules[PORT.id]) == DENY_ALL
    assert result.not_enforced[0].startswith(
        "port p1: firewall group g1 is not enforced: its ingress policy x cannot be read; "
        "everything to the port is dropped"
    )


def test_ipv6_addresses_get_their_family_s_rules_only() -> None:
    port = Port("p1", (ADDRESS, "2001:db8::5"), ())
    group = FirewallGroup(
        "g1",
        ("p1",),
        (rule("allow", ip_version=6, protocol="tcp", source_ip_address="2001:db8:1::/48"),),
    )
    rules = unlabelled(port_rules([port], [group], PortRules()).rules["p1"])
    v6 = "2001:db8::5/128"
    fixed = [
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "135"},
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "136"},
        {"dst": v6, "action": "admit", "proto": "udp", "dport": "546"},
    ]
    assert rules == [
        {"dst": f"{ADDRESS}/32", "action": "admit", "proto": "udp", "dport": "68"},
        {"dst": f"{ADDRESS}/32", "action": "drop"},
        # Neighbour discovery and DHCPv6 first, from any source: the
        # policy's prefix too.
        *({**rule, "src": ["2001:db8:1::/48"]} for rule in fixed[:1]),
        fixed[0],
        *({**rule, "src": ["2001:db8:1::/48"]} for rule in fixed[1:2]),
        fixed[1],
        *({**rule, "src": ["2001:db8:1::/48"]} for rule in fixed[2:]),
        fixed[2],
        {"dst": v6, "action": "admit", "proto": "tcp", "src": ["2001:db8:1::/48"]},
        {"dst": v6, "action": "drop"},
    ]


def test_a_tunnel_networks_port_gets_its_group_inside_its_vni() -> None:
    policy = POLICIES["the issue's: deny UDP to the port, allow TCP 22 from a prefix"]
    port = Port(PORT.id, PORT.addresses, (), Segment("vxlan", 1042))
    vlan = Port("p2", ("10.0.0.6",), (), Segment("vlan", 100))
    group = FirewallGroup("g1", (port.id, vlan.id), tuple(policy))
    result = port_rules([port, vlan], [group], PortRules())
    assert [rule.get("vni") for rule in result.rules[port.id]] == ["1042"] * 6
    assert all("vni" not in rule for rule in result.rules[vlan.id])
    assert any("port p2: vlan network" in note for note in result.not_enforced)


def test_icmp_on_an_ipv6_rule_is_icmpv6() -> None:
    # The hostile report's F2: "deny icmp" on an IPv6 rule must deny ICMPv6
    # (protocol 58), as both FWaaS drivers read it, not ICMPv4 (1), which no
    # IPv6 frame carries.
    port = Port("p6", ("2001:db8::5",), ())
    group = FirewallGroup(
        "fw6",
        ("p6",),
        (rule("deny", protocol="icmp", ip_version=6), rule("allow", ip_version=6)),
    )
    assert unlabelled(port_rules([port], [group], PortRules()).rules["p6"])[3:] == [
        {"dst": "2001:db8::5/128", "action": "drop", "proto": "icmpv6"},
        {"dst": "2001:db8::5/128", "action": "admit"},
        {"dst": "2001:db8::5/128", "action": "drop"},
    ]


def test_an_ipv6_icmp_allow_meets_the_security_groups_icmpv6_allow() -> None:
    # FWaaS "allow icmp" (IPv6) and the group's "ipv6-icmp type 128" are the
    # same protocol: their intersection is echo requests, not nothing.
    port = Port("p6", ("2001:db8::5",), ("sg",))
    groups = Groups(
        stateful={"sg": False},
        rules={"sg": [{"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp",
                       "port_range_min": 128}]},
    )  # fmt: skip
    group = FirewallGroup("fw6", ("p6",), (rule("allow", protocol="icmp", ip_version=6),))
    rules = unlabelled(port_rules([port], [group], sg_port_rules([port], groups)).rules["p6"])
    assert {
        "dst": "2001:db8::5/128", "action": "admit", "proto": "icmpv6", "icmp_type": "128"
    } in rules  # fmt: skip


def test_neighbour_discovery_and_dhcp_pass_a_deny_all_group_as_in_fwaas() -> None:
    # As F4 for security groups: neutron-fwaas's driver lets neighbour
    # solicitations and advertisements and DHCP replies in before the
    # policy (the project's `default` group denies everything else), not
    # router advertisements.
    port = Port("p6", ("2001:db8::5",), ())
    group = FirewallGroup("default", ("p6",), (rule("deny", ip_version=6),))
    rules = unlabelled(port_rules([port], [group], PortRules()).rules["p6"])
    v6 = "2001:db8::5/128"
    assert rules == [
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "135"},
        {"dst": v6, "action": "admit", "proto": "icmpv6", "icmp_type": "136"},
        {"dst": v6, "action": "admit", "proto": "udp", "dport": "546"},
        {"dst": v6, "action": "drop"},
        {"dst": v6, "action": "drop"},
    ]


def test_fixed_admits_the_chains_cannot_hold_are_dropped_and_said() -> None:
    # Six any-source rules and the deny: room for one of the three.
    policy = [rule("deny", ip_version=6, protocol="tcp", destination_port=str(p))
              for p in range(1, 7)]  # fmt: skip
    port = Port("p6", ("2001:db8::5",), ())
    result = port_rules([port], [FirewallGroup("g", ("p6",), tuple(policy))], PortRules())
    assert [r.get("icmp_type") for r in result.rules["p6"]][:2] == ["135", None]
    assert len(result.rules["p6"]) == 8
    assert (
        "port p6: firewall group g: neighbour advertisements, DHCP replies to 2001:db8::5 are "
        "dropped, which FWaaS lets in: the policy fills the chains of 8 rules"
    ) in result.not_enforced


@pytest.mark.parametrize(
    ("sg", "fw", "version", "admit"),
    [
        ({"protocol": "6", "port_range_min": 22, "port_range_max": 22},
         {"protocol": "tcp", "destination_port": "22"}, 4, {"proto": "tcp", "dport": "22"}),
        ({"protocol": "17", "port_range_min": 53, "port_range_max": 53}, {"protocol": "udp"}, 4,
         {"proto": "udp", "dport": "53"}),
        ({"protocol": "1", "port_range_min": 8}, {"protocol": "icmp"}, 4,
         {"proto": "icmp", "icmp_type": "8"}),
        ({"protocol": "58", "port_range_min": 128}, {"protocol": "icmp"}, 6,
         {"proto": "icmpv6", "icmp_type": "128"}),
    ],
)  # fmt: skip
def test_a_protocol_number_meets_its_name(
    sg: dict[str, Any], fw: dict[str, Any], version: int, admit: dict[str, str]
) -> None:
    # The hostile report's F7: Neutron keeps an SG rule's protocol number as
    # given ("6"), FWaaS takes names ("tcp"): the same protocol, so both
    # allow it and xdpath must too.
    address = "10.2.0.5" if version == 4 else "2001:db8::5"
    port = Port("p1", (address,), ("sg",))
    rules = {"direction": "ingress", "ethertype": f"IPv{version}", **sg}
    security = sg_port_rules([port], Groups(stateful={"sg": False}, rules={"sg": [rules]}))
    group = FirewallGroup("fw", ("p1",), (rule("allow", ip_version=version, **fw),))
    found = unlabelled(port_rules([port], [group], security).rules["p1"])
    destination = f"{address}/32" if version == 4 else f"{address}/128"
    assert {"dst": destination, "action": "admit", **admit} in found, found


def test_an_allowed_address_pair_gets_the_group_and_a_prefix_pair_is_said() -> None:
    # F10 for firewall groups: an address pair (a VIP) is an address of the
    # port; a prefix pair is not filtered (other ports' frames are in it).
    port = Port("p1", (ADDRESS, "10.0.0.200"), (), unfiltered=("10.0.1.0/24",))
    group = FirewallGroup("g1", ("p1",), (rule("deny", protocol="udp"),))
    result = port_rules([port], [group], PortRules())
    rules = unlabelled(result.rules["p1"])
    assert {"dst": "10.0.0.200/32", "action": "drop", "proto": "udp"} in rules
    assert rules[-1] == {"dst": "10.0.0.200/32", "action": "drop"}
    assert not any(r["dst"] == "10.0.1.0/24" for r in rules)
    assert any(
        note.startswith("port p1: its allowed address pair(s) 10.0.1.0/24 are not filtered")
        for note in result.not_enforced
    )


@pytest.mark.parametrize(
    ("rule_", "why"),
    [
        ({"protocol": "tcp", "source_port": "1024:65000", "destination_port": "22"},
         "source port 1024:65000"),
        ({"protocol": "gopher"}, "protocol gopher"),
        ({"protocol": "icmp", "destination_port": "8"}, "a destination port on protocol icmp"),
    ],
)  # fmt: skip
def test_the_service_driver_refuses_rules_xdpath_cannot_enforce(
    rule_: dict[str, Any], why: str
) -> None:
    # F12: such a rule used to be accepted and put its group out of force.
    from neutron_lib import exceptions

    from neutron_xdpath.fwaas_driver import XdpathFirewallDriver

    driver = XdpathFirewallDriver.__new__(XdpathFirewallDriver)
    with pytest.raises(exceptions.InvalidInput, match=why):
        driver.create_firewall_rule_precommit(None, rule("allow", **rule_))
    with pytest.raises(exceptions.InvalidInput, match="xdpath cannot enforce"):
        driver.update_firewall_rule_precommit(None, rule("allow"), rule("allow", **rule_))
    # What it can enforce passes (the full source range is no source port).
    driver.create_firewall_rule_precommit(
        None, rule("deny", protocol="udp", source_port="1:65535", destination_port="53")
    )


def test_fixed_admits_give_way_over_all_the_ports_addresses() -> None:
    # A source prefix's chain holds the rules for every address of the
    # port (a fixed IP and a pair): 2 x 4 sourced rules fit in 8 only
    # without the DHCP admits, which are then left out, and said; the
    # policy itself stays enforced.
    policy = [rule("deny", protocol="tcp", destination_port=str(p),
                   source_ip_address="192.0.2.0/24") for p in range(1, 5)]  # fmt: skip
    port = Port("p1", (ADDRESS, "10.0.0.200"), ())
    result = port_rules([port], [FirewallGroup("g", ("p1",), tuple(policy))], PortRules())
    rules = unlabelled(result.rules["p1"])
    assert not any(r.get("dport") == "68" for r in rules)
    assert sum(1 for r in rules if "src" in r) == 8
    assert not any("is not enforced" in note for note in result.not_enforced)
    assert (
        f"port p1: firewall group g: DHCP replies to {ADDRESS} are dropped, which FWaaS lets "
        "in: the policy fills the chains of 8 rules"
    ) in result.not_enforced


def test_a_rule_covering_part_of_a_prefix_is_unexpressible() -> None:
    # Ports' addresses reach `clause` as hosts today (prefix pairs are
    # reported unfiltered); should a prefix come, a rule for part of it
    # cannot be written as a rule for all of it: refused, never widened.
    from neutron_xdpath.fwaas import clause
    from neutron_xdpath.secgroups import Unexpressible

    rule = {"action": "deny", "ip_version": 4, "destination_ip_address": "10.9.1.0/25"}
    with pytest.raises(Unexpressible, match="covers part of"):
        clause("10.9.1.0/24", rule)
    assert clause("10.9.1.5/32", rule) is not None


def test_an_address_two_ports_share_is_filtered_by_one_ports_firewall_rules() -> None:
    # A VRRP VIP as an allowed address pair of two ports, each with its own
    # firewall group: both ports' rules for it were one chain, where the
    # first port's final drop ended the walk before the second's allows
    # (and two policies could overflow the chain's 8 and get the document
    # refused). Now the first port (by id) filters it, the other says so.
    vip = "10.0.0.100"
    first = Port("a", ("10.0.0.5", vip), ())
    second = Port("b", ("10.0.0.6", vip), ())
    groups = [
        FirewallGroup("web", ("a",), (rule("allow", protocol="tcp", destination_port="80"),)),
        FirewallGroup("ssh", ("b",), (rule("allow", protocol="tcp", destination_port="22"),)),
    ]
    result = port_rules([second, first], groups, PortRules())
    to_vip = {port: [r for r in unlabelled(rules) if r["dst"] == f"{vip}/32"]
              for port, rules in result.rules.items()}  # fmt: skip
    assert to_vip["b"] == []
    assert [r.get("dport") for r in to_vip["a"] if r["action"] == "admit"] == ["68", "80"]
    assert to_vip["a"][-1] == {"dst": f"{vip}/32", "action": "drop"}
    assert (
        f"port b: {vip} is filtered by port a's rules (an address both have: xdpath "
        "matches by destination, one port's rules for it)"
    ) in result.not_enforced
    # Each port keeps its own address's rules.
    assert any(r["dst"] == "10.0.0.6/32" and r.get("dport") == "22"
               for r in unlabelled(result.rules["b"]))  # fmt: skip
    # A port with security groups only and one with a firewall group: the
    # first by id still decides, whichever kind filters it.
    security = sg_port_rules(
        [Port("a", ("10.0.0.5", vip), ("sg",))],
        Groups(stateful={"sg": False}, rules={"sg": []}),
    )
    result = port_rules([first, second], groups[1:], security)
    assert [r for r in unlabelled(result.rules["b"]) if r["dst"] == f"{vip}/32"] == []
    assert [r for r in unlabelled(result.rules["a"]) if r["dst"] == f"{vip}/32"] != []
