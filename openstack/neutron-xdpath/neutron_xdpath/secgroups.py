"""Stateless security groups as xdpath filter rules: pure functions, no I/O.

A port whose security groups are all stateless (``stateful = false``) gets,
in its owner document (``neutron-port-<id>``, beside its QoS limits), for
each of its fixed IPs and of its allowed address pairs' addresses (or
prefixes: then ``dst`` is the prefix):

1. one ``admit`` rule per ingress rule of its groups of that address's
   ethertype: ``dst`` the address (``/32``, ``/128``), ``proto``, ``dport``
   the port range (TCP and UDP) or ``icmp_type`` (ICMP and ICMPv6:
   ``port_range_min`` is the type, ``port_range_max`` the code, ``"8"`` or
   ``"3/4"``), ``src`` the rule's ``remote_ip_prefix``,
   or the fixed IPs of the ``remote_group_id``'s member ports, or the
   ``remote_address_group_id``'s addresses (none, or a ``/0``: no ``src``);
2. what Neutron's firewall drivers let in whatever the groups say
   (`FIXED_ADMITS`), unless an allow above already does: on IPv6 ICMPv6
   neighbour solicitations and advertisements and router advertisements,
   and DHCP replies (UDP to 68, 546: by destination port alone, reported,
   as xdpath rules match no source port); those that do not fit in the
   address's chain are left out (dropped) and reported;
3. then one ``drop`` rule: ``dst`` the address, nothing else.

Each rule's ``labels`` (Prometheus labels on its hit counter) name the
``port_id`` and, for an allow, the ``security_group_id`` it comes from. On
a ``vxlan`` or ``geneve`` network every rule has ``vni`` = the network's
segmentation id (`segments`): it matches the inner headers of that VNI.

Why that is "allow these, deny the rest" in xdpath: a frame's rules are
those of its longest matching *source* prefix (that prefix's rules in list
order, then those of the prefixes around it), tried first, and then those
of its longest matching *destination* prefix. An admit rule with a ``src``
sits in the source chain and is tried before the drop; an admit rule
without one sits with the drop in the address's destination chain, before
it (the document's order is the list's). So a frame to the address that
some rule allows meets its admit rule first; any other meets the drop.

What cannot be expressed is refused for the whole port (reported, nothing
half-enforced): an ICMP code without a type, port ranges on protocols
other than TCP, UDP and ICMP, a stateful group next to
stateless ones, and more than 7 source-less allows for one address (a
prefix leads to at most 8 rules). Egress rules are not enforced (xdpath on
a compute node sees the traffic that comes *to* the VMs): reported,
unless they are Neutron's default "allow every egress".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neutron_xdpath.segments import Segment, in_segment

# A prefix leads to at most 8 rules (xdpath's MAX_CHAIN): the drop is one.
MAX_SOURCELESS = 7

# An allow is an xdpath ``admit`` rule: it ends the rules (so the address's
# final drop does not apply) but leaves the frame to the operator's blocklist
# and guards and to the port's QoS limits, which a ``pass`` would bypass.
ALLOW = "admit"

PROTOCOLS = {
    "tcp": "tcp",
    "udp": "udp",
    "icmp": "icmp",
    "ipv6-icmp": "icmpv6",
    "icmpv6": "icmpv6",
    "sctp": "132",
    "gre": "47",
    "esp": "50",
    "ah": "51",
}
PORTED = ("tcp", "udp", "6", "17")
ICMP = ("icmp", "icmpv6", "1", "58")
# Protocols by number, to compare "icmp" with "1" or "udp" with "17".
NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "icmpv6": "58"}

# What Neutron's firewall drivers let in to every port with port security,
# whatever its groups say: ICMPv6 neighbour solicitations and
# advertisements and router advertisements (the OVS firewall's
# _initialize_ingress_ipv6_icmp; the iptables firewall's
# _accept_inbound_icmpv6 and the server's RA rule), and DHCP replies (the
# OVS firewall's "DHCP offers" flows; the server's DHCP rules for
# iptables). Only the port's own addresses are matched here, so only what
# can be sent to them counts: NUD solicitations, solicited advertisements,
# a router's unicast answer to a solicitation, a DHCP server's unicast
# replies. MLD queries (130) go to multicast addresses only (RFC 3810
# 5.1.15), which no rule of the port matches: left out, they take no room.
# DHCP replies are matched by destination port only (xdpath rules match no
# source port; Neutron also wants 67, 547): said per port.
FIXED_ADMITS: dict[int, tuple[dict[str, str], ...]] = {
    4: ({"proto": "udp", "dport": "68"},),
    6: (
        {"proto": "icmpv6", "icmp_type": "135"},
        {"proto": "icmpv6", "icmp_type": "136"},
        {"proto": "udp", "dport": "546"},
        {"proto": "icmpv6", "icmp_type": "134"},
    ),
}


class Unexpressible(Exception):
    """A rule xdpath cannot express."""


@dataclass(frozen=True)
class Port:
    """A port with its fixed IPs and security groups."""

    id: str
    # Its fixed IPs, then its allowed address pairs' addresses: Neutron
    # filters everything the port receives, and a pair is an address it
    # receives for (a VRRP or Octavia VIP).
    addresses: tuple[str, ...]
    groups: tuple[str, ...]
    # Its network's segment (vxlan/geneve: its rules get the VNI).
    segment: Segment | None = None
    # Its allowed address pairs that are prefixes: not filtered (rules for
    # a prefix would filter other ports' frames in it), reported.
    unfiltered: tuple[str, ...] = ()


@dataclass
class Groups:
    """What the expansion needs: each group's statefulness and rules, each
    group's member addresses, each address group's prefixes."""

    stateful: dict[str, bool] = field(default_factory=dict)
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    address_groups: dict[str, list[str]] = field(default_factory=dict)


def number_of(protocol: str | None) -> str | None:
    """A protocol as its number (``"icmp"`` -> ``"1"``); None: any."""
    return None if protocol is None else NUMBERS.get(protocol, protocol)


def protocol_of(rule: Mapping[str, Any]) -> str | None:
    protocol = rule.get("protocol")
    if protocol in (None, "", "any", "0"):
        return None
    text = str(protocol).lower()
    if text.isdigit():
        return text
    if text not in PROTOCOLS:
        raise Unexpressible(f"protocol {protocol}")
    return PROTOCOLS[text]


def _ports(rule: Mapping[str, Any], protocol: str | None) -> str | None:
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    if low is None and high is None:
        return None
    if protocol not in PORTED:
        raise Unexpressible(f"a port range on protocol {protocol or 'any'}")
    low = int(low if low is not None else 1)
    high = int(high if high is not None else 65535)
    if (low, high) == (1, 65535):
        return None
    return str(low) if low == high else f"{low}-{high}"


def _icmp_type(rule: Mapping[str, Any]) -> str | None:
    """An ICMP rule's type (``port_range_min``) and code
    (``port_range_max``) as xdpath's ``icmp_type``: ``"8"``, ``"3/4"``."""
    kind, code = rule.get("port_range_min"), rule.get("port_range_max")
    if kind is None and code is None:
        return None
    if kind is None:
        raise Unexpressible(f"ICMP code {code} without a type")
    for what, value in (("type", kind), ("code", code)):
        if value is not None and not 0 <= int(value) <= 255:
            raise Unexpressible(f"ICMP {what} {value} (0-255)")
    return str(int(kind)) if code is None else f"{int(kind)}/{int(code)}"


def _same_family(prefix: str, version: int) -> bool:
    return ipaddress.ip_network(prefix, strict=False).version == version


def _sources(rule: Mapping[str, Any], groups: Groups, version: int) -> list[str] | None:
    """The rule's source prefixes of the address's family; ``None``: any
    source; an empty list: none (the rule allows nothing here)."""
    if prefix := rule.get("remote_ip_prefix"):
        network = ipaddress.ip_network(str(prefix), strict=False)
        if network.version != version:
            return []
        return None if network.prefixlen == 0 else [str(network)]
    if group := rule.get("remote_group_id"):
        members = groups.members.get(str(group), [])
        return sorted({host(a) for a in members if version_of(a) == version})
    if address_group := rule.get("remote_address_group_id"):
        prefixes = groups.address_groups.get(str(address_group), [])
        found = [str(ipaddress.ip_network(p, strict=False)) for p in prefixes]
        if any(ipaddress.ip_network(p).prefixlen == 0 for p in found if _same_family(p, version)):
            return None
        return sorted({p for p in found if _same_family(p, version)})
    return None


def host(address: str) -> str:
    """``10.0.0.5`` -> ``10.0.0.5/32``, an IPv6 address -> ``/128``; a
    prefix (an allowed address pair may be one) as itself."""
    parsed = ipaddress.ip_network(address, strict=False)
    return f"{parsed.network_address}/{parsed.prefixlen}"


def version_of(address: str) -> int:
    """An address's or prefix's IP version."""
    return ipaddress.ip_network(address, strict=False).version


def rules_for(
    address: str, rules: Iterable[Mapping[str, Any]], groups: Groups
) -> list[dict[str, Any]]:
    """The xdpath rules (``POST /v1/rules`` bodies) for one address: the
    allows, then the drop. Raises `Unexpressible`."""
    version = version_of(address)
    destination = host(address)
    ethertype = f"IPv{version}"
    allows: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    for rule in rules:
        if rule.get("direction") != "ingress" or rule.get("ethertype", "IPv4") != ethertype:
            continue
        protocol = protocol_of(rule)
        if version == 6 and protocol == "icmp":
            protocol = "icmpv6"  # as Neutron reads "icmp" on IPv6
        icmp = protocol in ICMP
        ports = None if icmp else _ports(rule, protocol)
        icmp_type = _icmp_type(rule) if icmp else None
        sources = _sources(rule, groups, version)
        if sources == []:
            continue
        allow: dict[str, Any] = {"dst": destination, "action": ALLOW}
        if sources is not None:
            allow["src"] = sources
        if protocol is not None:
            allow["proto"] = protocol
        if ports is not None:
            allow["dport"] = ports
        if icmp_type is not None:
            allow["icmp_type"] = icmp_type
        if allow in seen:
            continue  # the same allow from another group: the first names it
        seen.append(dict(allow))
        if group := rule.get("security_group_id"):
            allow["labels"] = {"security_group_id": str(group)}
        allows.append(allow)
    # Allows with a source first (they sit in source chains anyway).
    allows.sort(key=lambda allow: "src" not in allow)
    sourceless = sum(1 for allow in allows if "src" not in allow)
    if sourceless > MAX_SOURCELESS:
        raise Unexpressible(
            f"{sourceless} rules allowing any source to {address} "
            f"(xdpath holds at most {MAX_SOURCELESS} besides the drop)"
        )
    return [*allows, {"dst": destination, "action": "drop"}]


def _covers(allow: Mapping[str, Any], fixed: Mapping[str, str]) -> bool:
    """Whether a source-less allow already admits all that ``fixed`` does."""
    if "src" in allow or allow.get("action") != ALLOW:
        return False
    if allow.get("proto") is None:
        return True
    if number_of(str(allow["proto"])) != number_of(fixed["proto"]):
        return False
    if "icmp_type" in fixed:
        return allow.get("icmp_type") in (None, fixed["icmp_type"])
    low, _, high = str(allow.get("dport") or "1-65535").partition("-")
    return int(low) <= int(fixed["dport"]) <= int(high or low)


@dataclass
class WithFixed:
    """An address's rules with `FIXED_ADMITS`: the DHCP ports admitted by
    destination port alone, and what had no room."""

    rules: list[dict[str, Any]]
    dhcp_ports: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def with_fixed_admits(address: str, rules: list[dict[str, Any]]) -> WithFixed:
    """`rules_for`'s rules with `FIXED_ADMITS` before the drop, but for those
    an allow already covers. Those the address's chain has no room for are
    left out: dropped, stricter than Neutron, never looser, and reported."""
    *allows, drop = rules
    version = version_of(address)
    room = MAX_SOURCELESS - sum(1 for allow in allows if "src" not in allow)
    result = WithFixed(rules=list(allows))
    for fixed in FIXED_ADMITS[version]:
        if any(_covers(allow, fixed) for allow in allows):
            continue
        if len(result.rules) - len(allows) >= room:
            result.left_out.append(_FIXED_NAMES[fixed.get("icmp_type") or fixed["dport"]])
            continue
        result.rules.append({"dst": drop["dst"], "action": ALLOW, **fixed})
        if fixed["proto"] == "udp":
            result.dhcp_ports.append(fixed["dport"])
    result.rules.append(drop)
    return result


_FIXED_NAMES = {
    "135": "neighbour solicitations",
    "136": "neighbour advertisements",
    "134": "router advertisements",
    "68": "DHCP replies",
    "546": "DHCPv6 replies",
}


def shared_address_note(port_id: str, address: str, first: str) -> str:
    """What is said of a port whose address another port's rules filter."""
    return (
        f"port {port_id}: {address} is filtered by port {first}'s rules (an address both "
        "have: xdpath matches by destination, one port's rules for it)"
    )


def unfiltered_note(port: Port) -> str:
    """What is said of a port's allowed address pairs that are prefixes."""
    return (
        f"port {port.id}: its allowed address pair(s) {', '.join(port.unfiltered)} are not "
        "filtered by xdpath (it matches frames by destination address, and a prefix holds "
        "other ports' and hosts' addresses)"
    )


def _restricts_egress(rule: Mapping[str, Any]) -> bool:
    """An egress rule other than "allow everything" (Neutron's default)."""
    if rule.get("direction") != "egress":
        return False
    keys = ("protocol", "port_range_min", "port_range_max", "remote_group_id",
            "remote_address_group_id")  # fmt: skip
    prefix = rule.get("remote_ip_prefix")
    wide = prefix is None or ipaddress.ip_network(str(prefix), strict=False).prefixlen == 0
    return not wide or any(rule.get(key) not in (None, "") for key in keys)


@dataclass
class PortRules:
    """Each handled port's rules, and the notes about the others."""

    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    not_enforced: list[str] = field(default_factory=list)


def port_rules(ports: Sequence[Port], groups: Groups) -> PortRules:
    """The rules of every port whose groups are all stateless."""
    result = PortRules()
    # Who filters each (address, VNI): an address two ports of the host
    # have (an allowed address pair on both, a VRRP or Octavia VIP) gets
    # the rules of the first port by id whose groups are enforced; the
    # others are said. Both ports' rules for it would be one chain to
    # xdpath, which matches by destination: the first port's final drop
    # would end it before the second's allows, and two ports' rules could
    # overflow the chain (8) and get a whole document refused.
    claimed: dict[tuple[str, str], str] = {}
    for port in sorted(ports, key=lambda port: port.id):
        if not port.groups:
            continue
        stateful = [g for g in port.groups if groups.stateful.get(g, True)]
        if stateful:
            result.not_enforced.append(
                f"port {port.id}: security group(s) {', '.join(sorted(stateful))} stateful: "
                "not handled by xdpath (XDP has no connection tracking for the VMs' "
                "connections); none of its groups is enforced"
            )
            continue
        rules = [rule for group in port.groups for rule in groups.rules.get(group, [])]
        if any(_restricts_egress(rule) for rule in rules):
            result.not_enforced.append(
                f"port {port.id}: egress security group rules are not enforced by xdpath "
                "(it sees the traffic that comes to the port)"
            )
        if port.segment is not None and (note := port.segment.note(f"port {port.id}")):
            result.not_enforced.append(note)
        vni = str(port.segment.vni if port.segment is not None else None)
        mine = [a for a in port.addresses if claimed.get((a, vni), port.id) == port.id]
        try:
            fixed = {a: with_fixed_admits(a, rules_for(a, rules, groups)) for a in mine}
        except Unexpressible as why:
            result.not_enforced.append(
                f"port {port.id}: its stateless security groups are not enforced: {why}"
            )
            continue
        for address in port.addresses:
            first = claimed.setdefault((address, vni), port.id)
            if first != port.id:
                result.not_enforced.append(shared_address_note(port.id, address, first))
        result.rules[port.id] = [
            {**xdpath_rule, "labels": {"port_id": port.id, **xdpath_rule.get("labels", {})}}
            for each in fixed.values()
            for xdpath_rule in in_segment(each.rules, port.segment)
        ]
        for address, each in fixed.items():
            if each.left_out:
                result.not_enforced.append(
                    f"port {port.id}: {', '.join(each.left_out)} to {address} are dropped, "
                    "which Neutron's firewall lets in: the groups' allows fill the "
                    f"address's {MAX_SOURCELESS} rules for any source"
                )
        if port.unfiltered:
            result.not_enforced.append(unfiltered_note(port))
        if dhcp := sorted({p for each in fixed.values() for p in each.dhcp_ports}, key=int):
            result.not_enforced.append(
                f"port {port.id}: the source port of DHCP replies (67, 547) is not checked: "
                f"UDP to port {' and '.join(dhcp)} is admitted from any source port (xdpath "
                "rules match no source port)"
            )
    return result
