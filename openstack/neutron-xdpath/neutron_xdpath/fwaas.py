"""FWaaS v2 firewall groups as xdpath filter rules: pure functions, no I/O.

A firewall group's **ingress** policy is an ordered list of rules, the
first that matches a frame decides (``allow``, ``deny``, ``reject``), and
what none matches is denied. For each fixed IP of each port of the group
(role ``compute``), every enabled rule of the address's ``ip_version``
whose ``destination_ip_address`` (if any) holds the address becomes a
*clause*: its sources (``source_ip_address``, or any), protocol
(``icmp`` on an IPv6 rule is ICMPv6, as both FWaaS drivers read it),
destination ports and action (``allow`` -> ``admit``; ``deny``, ``reject``
-> ``drop``). The clauses become xdpath rules, all with ``dst`` the
address (``/32``, ``/128``), in this order (`expand`):

- first, what neutron-fwaas lets in before any policy (`FIXED_CLAUSES`:
  ICMPv6 neighbour solicitations and advertisements, DHCP replies), as
  any-source allows, as many as the chains hold (the rest reported);
- a clause with sources: one rule whose ``src`` is every source prefix
  of the port's clauses (the *used* prefixes) that one of its sources
  covers;
- a clause for any source: one rule whose ``src`` is every used prefix
  (if any), and one with no ``src``;
- then the implicit deny: ``drop``, no ``src``.

**Why that is FWaaS's first match.** xdpath tries the rules of the
frame's longest matching *source* prefix in list order (each prefix's
chain: its own rules, then those of the prefixes covering it), then those
of its *destination*. For a frame to the address from ``s``, let ``Q`` be
the longest used prefix holding ``s``. A clause matches ``s`` iff one of
its sources holds ``s``; such a source is a used prefix holding ``s``, so
it covers ``Q``, and the clause's rule has ``Q`` in its ``src``;
conversely a rule with ``Q`` in its ``src`` comes from a clause whose
source covers ``Q`` (or any source), which holds ``s``. So ``Q``'s chain
holds exactly the clauses that match ``s`` by source, in the policy's
order (the rules of covering prefixes are the same rules again; a longer
prefix of someone else's in front of ``Q`` holds rules for other
addresses, or an operator's, which decide first by design): the first of
them that matches the frame is FWaaS's first match. If none matches, no
clause with a source matches, and the destination chain holds the
any-source clauses in order, then the deny. With no ``Q`` (``s`` in no
used prefix) only any-source clauses can match: the destination chain.

**Firewall group and stateless security groups on one port.** Neutron
lets a frame in only if both allow it. Each ``allow`` clause is replaced
by its intersections with the port's security group allows (source
prefixes, protocol, port ranges and ICMP type intersected; empty ones
left out), in place: the first clause that matches is the FWaaS rule that decides, and
it lets the frame in only if a security group rule allows it too (if
none does, no later allow can, and a deny or the final drop follows).

Refused at the API (`check_rule`, by `fwaas_driver`): source port ranges
(xdpath rules match no source port), protocols xdpath cannot name. What
the agent still cannot express (more than 8 rules for one prefix,
xdpath's chain limit; an unreadable policy) denies everything to the
port but what FWaaS always lets in (fail closed; reported). Egress
policies are not enforced (xdpath on a compute node sees what comes *to*
the VMs): reported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from neutron_xdpath.secgroups import (
    ALLOW,
    PORTED,
    Port,
    PortRules,
    Unexpressible,
    host,
    number_of,
    protocol_of,
    shared_address_note,
    unfiltered_note,
    version_of,
)
from neutron_xdpath.segments import in_segment

# A prefix leads to at most 8 rules (xdpath's MAX_CHAIN).
MAX_CHAIN = 8
ACTIONS = {"allow": ALLOW, "deny": "drop", "reject": "drop"}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FirewallGroup:
    """A firewall group with its ingress policy's rules in order (``None``:
    no ingress policy: everything denied, as FWaaS's drivers do)."""

    id: str
    ports: tuple[str, ...]
    ingress: tuple[Mapping[str, Any], ...] | None
    egress: bool = False
    admin_state_up: bool = True
    # Why its rules cannot be known (a policy or rule not readable).
    problem: str | None = None


@dataclass(frozen=True)
class Clause:
    """One rule as xdpath can match it, for one address."""

    sources: tuple[str, ...] | None  # None: any source
    protocol: str | None
    ports: tuple[int, int] | None
    action: str
    # ICMP type or type/code (``"8"``, ``"3/4"``): FWaaS rules have none,
    # a security group's ICMP allow may; an intersection must keep it, or
    # an allow-all firewall would widen "echo only" to every ICMP type.
    icmp_type: str | None = None


@dataclass
class Clauses:
    """An address's clauses, and whether a ``reject`` became a drop."""

    clauses: list[Clause] = field(default_factory=list)
    rejects: bool = False


def _network(text: str) -> Network:
    return ipaddress.ip_network(text, strict=False)


def _range(text: Any, what: str) -> tuple[int, int] | None:
    """``"22"`` or ``"1000:2000"`` -> (low, high); the full range: None."""
    if text in (None, ""):
        return None
    low, _, high = str(text).partition(":")
    bounds = (int(low), int(high or low))
    if bounds[0] <= 1 and bounds[1] >= 65535:
        return None
    if not 0 <= bounds[0] <= bounds[1] <= 65535:
        raise Unexpressible(f"{what} {text}")
    return bounds


def check_rule(rule: Mapping[str, Any]) -> None:
    """Raises `Unexpressible` for a rule no address's rules can express
    (a source port range, a protocol xdpath cannot name, a destination
    port on a protocol without ports): the driver refuses it at the API
    (`fwaas_driver`), so that a group can only hold what xdpath enforces."""
    if _range(rule.get("source_port"), "source port") is not None:
        raise Unexpressible(f"source port {rule['source_port']} (xdpath rules match none)")
    protocol = protocol_of(rule)
    if _range(rule.get("destination_port"), "destination port") is not None and (
        protocol not in PORTED
    ):
        raise Unexpressible(f"a destination port on protocol {protocol or 'any'}")


def clause(address: str, rule: Mapping[str, Any]) -> Clause | None:
    """The rule for frames to ``address``; None when it cannot match them.
    Raises `Unexpressible`."""
    parsed = _network(address)
    if rule.get("enabled") is False or int(rule.get("ip_version") or 4) != parsed.version:
        return None
    if destination := rule.get("destination_ip_address"):
        network = _network(str(destination))
        if network.version != parsed.version or not parsed.overlaps(network):
            return None
        if not parsed.subnet_of(network):  # type: ignore[arg-type]
            # An allowed address pair's prefix the rule covers in part:
            # xdpath's rule for the prefix would match all of it.
            raise Unexpressible(f"destination {destination} covers part of {address}")
    if _range(rule.get("source_port"), "source port") is not None:
        raise Unexpressible(f"source port {rule['source_port']} (xdpath rules match none)")
    sources: tuple[str, ...] | None = None
    if source := rule.get("source_ip_address"):
        network = _network(str(source))
        if network.version != parsed.version:
            return None
        sources = None if network.prefixlen == 0 else (str(network),)
    protocol = protocol_of(rule)
    if parsed.version == 6 and protocol == "icmp":
        # Both FWaaS drivers (iptables' _protocol_arg, the OVS firewall's
        # _translate_protocol_to_number) read "icmp" on an IPv6 rule as
        # ICMPv6; xdpath's icmp is protocol 1, which no IPv6 frame carries.
        protocol = "icmpv6"
    ports = _range(rule.get("destination_port"), "destination port")
    if ports is not None and protocol not in PORTED:
        raise Unexpressible(f"a destination port on protocol {protocol or 'any'}")
    action = str(rule.get("action", "deny"))
    return Clause(sources, protocol, ports, ACTIONS.get(action, "drop"))


def clauses_for(address: str, rules: Iterable[Mapping[str, Any]]) -> Clauses:
    """The policy's rules for ``address``, in order."""
    out = Clauses()
    for rule in rules:
        if (found := clause(address, rule)) is not None:
            out.clauses.append(found)
            out.rejects |= rule.get("action") == "reject"
    return out


def _both(one: tuple[str, ...] | None, other: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if one is None or other is None:
        return other if one is None else one
    found = set()
    for a in map(_network, one):
        for b in map(_network, other):
            if a.version == b.version and (a.subnet_of(b) or b.subnet_of(a)):  # type: ignore[arg-type]
                found.add(str(a if a.prefixlen >= b.prefixlen else b))
    return tuple(sorted(found))


def _icmp_types(one: str | None, other: str | None) -> str | None:
    """What both ICMP type specs match (``"8"`` and ``"8/0"``: ``"8/0"``);
    raises `ValueError` when they match nothing in common."""
    if one is None or other is None:
        return other if one is None else one
    kind, _, code = one.partition("/")
    other_kind, _, other_code = other.partition("/")
    if int(kind) != int(other_kind) or (code and other_code and int(code) != int(other_code)):
        raise ValueError("no ICMP type in common")
    return one if code else other


def intersect(one: Clause, other: Clause) -> Clause | None:
    """What both match (with ``one``'s action), or None."""
    sources = _both(one.sources, other.sources)
    if sources == ():
        return None
    if None not in (one.protocol, other.protocol) and number_of(one.protocol) != number_of(
        other.protocol
    ):
        return None
    try:
        icmp_type = _icmp_types(one.icmp_type, other.icmp_type)
    except ValueError:
        return None
    ports = one.ports or other.ports
    if one.ports and other.ports:
        ports = (max(one.ports[0], other.ports[0]), min(one.ports[1], other.ports[1]))
        if ports[0] > ports[1]:
            return None
    protocol = one.protocol or other.protocol
    return replace(one, sources=sources, protocol=protocol, ports=ports, icmp_type=icmp_type)


def within(clauses: Sequence[Clause], allows: Sequence[Clause]) -> list[Clause]:
    """Each ``admit`` clause replaced by its intersections with ``allows``."""
    out: list[Clause] = []
    for each in clauses:
        if each.action != ALLOW:
            out.append(each)
            continue
        out.extend(found for allow in allows if (found := intersect(each, allow)) is not None)
    return out


# What an allow of `secgroups.rules_for` may hold: `Clause` carries every
# field that narrows a match; the rest only place or name the rule.
_SG_FIELDS = {"dst", "action", "src", "proto", "dport", "icmp_type", "labels", "vni"}


def sg_allows(address: str, rules: Sequence[Mapping[str, Any]]) -> list[Clause]:
    """The ``admit`` rules `secgroups.rules_for` made for ``address``.
    Raises `Unexpressible` for a field a clause cannot carry: dropping it
    would widen the security group's allow."""
    out = []
    for rule in rules:
        if rule.get("dst") != host(address) or rule.get("action") != ALLOW:
            continue
        if unknown := sorted(set(rule) - _SG_FIELDS):
            raise Unexpressible(f"a security group rule with {', '.join(unknown)}")
        low, _, high = str(rule.get("dport", "")).partition("-")
        ports = (int(low), int(high or low)) if low else None
        sources = tuple(rule["src"]) if rule.get("src") else None
        icmp_type = str(rule["icmp_type"]) if rule.get("icmp_type") is not None else None
        out.append(Clause(sources, rule.get("proto"), ports, ALLOW, icmp_type))
    return out


def _covered(prefix: str, sources: tuple[str, ...] | None) -> bool:
    inner = _network(prefix)
    return sources is None or any(
        inner.subnet_of(outer)  # type: ignore[arg-type]
        for outer in map(_network, sources)
        if outer.version == inner.version
    )


def expand(address: str, clauses: Sequence[Clause]) -> list[dict[str, Any]]:
    """The xdpath rules (``POST /v1/rules`` bodies) of the clauses, then
    the drop of the rest (see the module's documentation)."""
    destination = host(address)
    used = sorted({prefix for each in clauses for prefix in each.sources or ()})
    out: list[dict[str, Any]] = []
    for each in clauses:
        rule: dict[str, Any] = {"dst": destination, "action": each.action}
        if each.protocol is not None:
            rule["proto"] = each.protocol
        if each.ports is not None:
            low, high = each.ports
            rule["dport"] = str(low) if low == high else f"{low}-{high}"
        if each.icmp_type is not None:
            rule["icmp_type"] = each.icmp_type
        if under := [prefix for prefix in used if _covered(prefix, each.sources)]:
            out.append({**rule, "src": under})
        if each.sources is None:
            out.append(rule)
    out.append({"dst": destination, "action": "drop"})
    return out


def check_chains(rules: Sequence[Mapping[str, Any]]) -> None:
    """Refuses rules that lead one prefix to more than `MAX_CHAIN` rules:
    a source prefix's (the rules whose ``src`` covers it) or an address's
    (those without ``src``)."""
    prefixes = {prefix for rule in rules for prefix in rule.get("src", ())}
    for prefix in sorted(prefixes):
        count = sum(1 for rule in rules if "src" in rule and _covered(prefix, tuple(rule["src"])))
        if count > MAX_CHAIN:
            raise Unexpressible(f"{count} rules for sources in {prefix} (at most {MAX_CHAIN})")
    for destination in sorted({str(rule["dst"]) for rule in rules if "src" not in rule}):
        count = sum(1 for rule in rules if "src" not in rule and rule["dst"] == destination)
        if count > MAX_CHAIN:
            raise Unexpressible(
                f"{count} rules for any source to {destination} (at most {MAX_CHAIN})"
            )


# What neutron-fwaas's firewall of VM ports (its OVS driver) lets in to
# every port of a group, before the policy's rules: ICMPv6 neighbour
# solicitations and advertisements (and MLD queries, which go to multicast
# addresses, never to the port's own: no room taken) and DHCP replies (by
# destination port alone: xdpath rules match no source port, reported).
# Router advertisements only as the policy says. First, as in FWaaS.
FIXED_CLAUSES: dict[int, tuple[Clause, ...]] = {
    4: (Clause(None, "udp", (68, 68), ALLOW),),
    6: (
        Clause(None, "icmpv6", None, ALLOW, "135"),
        Clause(None, "icmpv6", None, ALLOW, "136"),
        Clause(None, "udp", (546, 546), ALLOW),
    ),
}
_FIXED_NAMES = {"135": "neighbour solicitations", "136": "neighbour advertisements"}


@dataclass
class GroupRules:
    """A port's rules for its firewall group, and what to say of them."""

    rules: list[dict[str, Any]] = field(default_factory=list)
    rejects: bool = False  # a reject became a drop
    dhcp_ports: list[str] = field(default_factory=list)  # admitted from any source port
    left_out: dict[str, list[str]] = field(default_factory=dict)  # address -> no room for


def _with_fixed(address: str, clauses: list[Clause], count: int) -> list[dict[str, Any]]:
    """The address's rules with the first ``count`` of its `FIXED_CLAUSES`
    first."""
    fixed = FIXED_CLAUSES[version_of(address)][:count]
    # An any-source allow the same as a fixed one decides nothing more.
    return expand(address, [*fixed, *(each for each in clauses if each not in fixed)])


def _group_rules(
    port: Port, ingress: Sequence[Mapping[str, Any]], security: list[dict[str, Any]] | None
) -> GroupRules:
    """The port's rules (see the module's documentation): with as many of
    `FIXED_CLAUSES` as the chains hold, over all the port's addresses (a
    source prefix's chain holds the rules for every one of them); those
    left out are dropped (stricter) and reported. Raises `Unexpressible`
    when the policy alone does not fit."""
    result = GroupRules()
    clauses: dict[str, list[Clause]] = {}
    for address in port.addresses:
        found = clauses_for(address, ingress)
        result.rejects |= found.rejects
        clauses[address] = found.clauses
        if security is not None:
            clauses[address] = within(found.clauses, sg_allows(address, security))
    most = max(len(fixed) for fixed in FIXED_CLAUSES.values())
    for count in range(most, -1, -1):
        result.rules = [
            rule
            for address in port.addresses
            for rule in _with_fixed(address, clauses[address], count)
        ]
        try:
            check_chains(result.rules)
        except Unexpressible:
            if count == 0:
                raise
            continue
        break
    for address in port.addresses:
        fixed = FIXED_CLAUSES[version_of(address)]
        for each in fixed[:count]:
            if each.protocol == "udp" and each.ports is not None:
                result.dhcp_ports.append(str(each.ports[0]))
        if left := [
            _FIXED_NAMES.get(each.icmp_type or "", "DHCP replies") for each in fixed[count:]
        ]:
            result.left_out[address] = left
    return result


def port_rules(
    ports: Sequence[Port], groups: Sequence[FirewallGroup], security: PortRules
) -> PortRules:
    """Every port's rules: its firewall group's ingress policy (within its
    stateless security groups), or else its security groups' rules."""
    result = PortRules(rules=dict(security.rules), not_enforced=list(security.not_enforced))
    by_port = {port: group for group in groups for port in group.ports}
    for port in ports:
        group = by_port.get(port.id)
        if group is None:
            continue
        if group.egress:
            result.not_enforced.append(
                f"port {port.id}: the egress policy of firewall group {group.id} is not "
                "enforced by xdpath (it sees the traffic that comes to the port)"
            )
        if not group.admin_state_up:
            # neutron-fwaas's drivers never open a port for a disabled group:
            # the VM ports' (L2) agent keeps applying its rules (it only
            # reports DOWN), the router ports' driver drops everything. So its
            # rules stay in force here too; said, as users may expect less.
            result.not_enforced.append(
                f"port {port.id}: firewall group {group.id} is disabled (admin_state_up "
                "false): its rules stay in force, as neutron-fwaas's drivers keep them"
            )
        # No ingress policy: FWaaS's drivers deny every ingress frame (the
        # OVS and OVN drivers' default deny, the router driver's DROP_ALL),
        # so an empty policy: only its implicit deny.
        ingress = () if group.ingress is None else group.ingress
        try:
            if group.problem is not None:
                raise Unexpressible(group.problem)
            found = _group_rules(port, ingress, security.rules.get(port.id))
        except (Unexpressible, ValueError) as why:
            # Fail closed: a group that cannot be enforced as it is denies
            # everything to the port (but what FWaaS always lets in), which
            # is at least as strict as any policy; the port's security
            # groups alone would let in what the group may deny.
            found = _group_rules(port, (), None)
            result.not_enforced.append(
                f"port {port.id}: firewall group {group.id} is not enforced: {why}; "
                "everything to the port is dropped (but neighbour discovery and DHCP "
                "replies) until it can be"
            )
        # Tenant networks in tunnels: matched inside the port's VNI, as its
        # security groups are; each rule names the port and the group.
        labels = {"port_id": port.id, "firewall_group_id": group.id}
        result.rules[port.id] = [
            {**rule, "labels": labels} for rule in in_segment(found.rules, port.segment)
        ]
        note = port.segment.note(f"port {port.id}") if port.segment is not None else None
        if note is not None and note not in result.not_enforced:
            result.not_enforced.append(note)
        for address, left in found.left_out.items():
            result.not_enforced.append(
                f"port {port.id}: firewall group {group.id}: {', '.join(left)} to {address} "
                "are dropped, which FWaaS lets in: the policy fills the chains of 8 rules"
            )
        if dhcp := sorted(set(found.dhcp_ports), key=int):
            note = (
                f"port {port.id}: the source port of DHCP replies (67, 547) is not checked: "
                f"UDP to port {' and '.join(dhcp)} is admitted from any source port (xdpath "
                "rules match no source port)"
            )
            if note not in result.not_enforced:
                result.not_enforced.append(note)
        if port.unfiltered and (unfiltered := unfiltered_note(port)) not in result.not_enforced:
            result.not_enforced.append(unfiltered)
        if found.rejects:
            result.not_enforced.append(
                f"port {port.id}: firewall group {group.id}: reject enforced as drop "
                "(XDP sends no ICMP or TCP reset)"
            )
    _one_port_per_address(result)
    return result


def _one_port_per_address(result: PortRules) -> None:
    """Leaves an address two ports of the host share (an allowed address
    pair on both: a VRRP or Octavia VIP) to the first port's rules (by id):
    the rules of both for it would be one chain to xdpath, which matches by
    destination, where the first port's final drop ends the walk before the
    second's allows, and two ports' rules can overflow the chain (8) and get
    the whole document refused. `secgroups.port_rules` did this for
    security groups; a firewall group's rules replace a port's, so it is
    done again over them all."""
    claimed: dict[tuple[str, str | None], str] = {}
    for port_id in sorted(result.rules):
        kept: list[dict[str, Any]] = []
        given: dict[str, str] = {}
        for rule in result.rules[port_id]:
            first = claimed.setdefault((rule["dst"], rule.get("vni")), port_id)
            if first == port_id:
                kept.append(rule)
            else:
                given.setdefault(rule["dst"], first)
        result.rules[port_id] = kept
        for destination, first in given.items():
            note = shared_address_note(port_id, destination.split("/")[0], first)
            if note not in result.not_enforced:
                result.not_enforced.append(note)
