"""What each Neutron object becomes in xdpath: pure functions, no I/O.

One xdpath **owner** per Neutron object that has a limit (or, for a port,
a stateless security group: `secgroups`) in force:
``neutron-fip-<floating IP id>`` or ``neutron-port-<port id>`` (at most 50
characters: xdpath takes 64). Its document (``PUT /v1/owners/{owner}``)
holds the rate limits of that object's addresses (and a port's filter
rules), and nothing else, so the
agent replaces an object's limits in one atomic call and removes them with
one ``DELETE``; the owner is the ``owner`` label of the limits' counters,
and each limit's ``labels`` name the object (``floating_ip_id`` or
``port_id``) and its ``qos_policy_id`` there too. A port on a ``vxlan`` or
``geneve`` network gets its limits with ``vni`` (`segments`).

A QoS policy's rules for an address, per direction:

- ``ingress`` (traffic *to* the address): ``per dst``, ``scope ADDR/32``
  (``/128``): one token bucket for everything sent to the address;
- ``egress`` (traffic *from* it): ``per src``, ``scope ADDR/32``; only
  where the agent is told that its host receives that traffic
  (``[agent] egress = true``), else reported as not enforced;
- ``packet_rate_limit``: ``pps = max_kpps * 1000``, ``burst = max_burst_kpps
  * 1000`` (``max_burst_kpps`` 0: xdpath's default, one second's worth);
- ``bandwidth_limit``: ``bps = max_kbps * 1000 / 8`` (Neutron's kbps are
  1000 bits per second; xdpath counts bytes), ``burst_bytes =
  max_burst_kbps * 1000 / 8`` (0: one second's worth);
- both rule types in one direction make one limit with both buckets
  (a frame must fit both); a rate of 0 is Neutron's "no limit" and is left out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neutron_xdpath.secgroups import PortRules
from neutron_xdpath.segments import Segment, in_segment

OWNER_PREFIX = "neutron-"
INGRESS = "ingress"
EGRESS = "egress"
PACKET_RATE_LIMIT = "packet_rate_limit"
BANDWIDTH_LIMIT = "bandwidth_limit"
HANDLED_RULES = (PACKET_RATE_LIMIT, BANDWIDTH_LIMIT)


@dataclass(frozen=True)
class Subject:
    """A Neutron object whose addresses a policy limits."""

    kind: str  # "fip" or "port"
    id: str
    addresses: tuple[str, ...]
    policy_id: str
    # A port's network segment (vxlan/geneve: its limits get the VNI).
    segment: Segment | None = None
    # A port's allowed address pairs that are prefixes: not limited.
    unlimited: tuple[str, ...] = ()

    @property
    def owner(self) -> str:
        return f"{OWNER_PREFIX}{self.kind}-{self.id}"

    @property
    def labels(self) -> dict[str, str]:
        """The Prometheus labels of its limits: the object and its policy."""
        key = "floating_ip_id" if self.kind == "fip" else f"{self.kind}_id"
        return {key: self.id, "qos_policy_id": self.policy_id}


@dataclass
class Plan:
    """Every owner's document, and what was left out and why."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # owner -> policy id, for the agent's report
    policies: dict[str, str] = field(default_factory=dict)
    not_enforced: list[str] = field(default_factory=list)


def _rate(rule: Mapping[str, Any], key: str) -> int:
    value = rule.get(key) or 0
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def _limit(address: str, direction: str) -> dict[str, Any]:
    network = ipaddress.ip_network(address)
    return {"per": "dst" if direction == INGRESS else "src", "scope": str(network)}


def limits_for(
    address: str, rules: Sequence[Mapping[str, Any]], directions: Iterable[str]
) -> list[dict[str, Any]]:
    """The xdpath limits (``POST /v1/ratelimits`` bodies, as text values)
    that enforce ``rules`` for ``address`` in ``directions``."""
    out: list[dict[str, Any]] = []
    for direction in (INGRESS, EGRESS):
        if direction not in directions:
            continue
        limit = _limit(address, direction)
        for rule in rules:
            if rule.get("direction", INGRESS) != direction:
                continue
            kind = rule.get("type")
            if kind == PACKET_RATE_LIMIT and (kpps := _rate(rule, "max_kpps")):
                limit["pps"] = str(kpps * 1000)
                if burst := _rate(rule, "max_burst_kpps"):
                    limit["burst"] = str(burst * 1000)
            elif kind == BANDWIDTH_LIMIT and (kbps := _rate(rule, "max_kbps")):
                limit["bps"] = str(kbps * 1000 // 8)
                if burst := _rate(rule, "max_burst_kbps"):
                    limit["burst_bytes"] = str(burst * 1000 // 8)
        if "pps" in limit or "bps" in limit:
            out.append(limit)
    return out


def host_prefix(address: str) -> str:
    """``203.0.113.7`` -> ``203.0.113.7/32``, an IPv6 address -> ``/128``."""
    parsed = ipaddress.ip_address(address)
    return f"{parsed}/{parsed.max_prefixlen}"


def plan(
    subjects: Iterable[Subject],
    policies: Mapping[str, Sequence[Mapping[str, Any]]],
    egress: bool,
) -> Plan:
    """Each subject's owner document from its policy's rules
    (``policies``: policy id -> rules as Neutron lists them)."""
    result = Plan()
    directions = (INGRESS, EGRESS) if egress else (INGRESS,)
    # Who limits each (per, scope, vni) already: an address two ports share
    # (an allowed address pair, a VRRP VIP) gets one limit, the first
    # port's, not one per port (two would charge each frame twice and
    # take xdpath's general limits, one per extra port).
    limited_by: dict[tuple[str, str, str], str] = {}
    # By id, as the security groups' rules: one port's limit and rules.
    for subject in sorted(subjects, key=lambda subject: (subject.kind, subject.id)):
        rules = policies.get(subject.policy_id)
        if rules is None:
            result.not_enforced.append(
                f"{subject.kind} {subject.id}: QoS policy {subject.policy_id} not found"
            )
            continue
        for rule in rules:
            kind = rule.get("type")
            if kind not in HANDLED_RULES:
                result.not_enforced.append(
                    f"{subject.kind} {subject.id}: {kind} rules are not enforced by xdpath"
                )
            elif rule.get("direction", INGRESS) not in directions:
                result.not_enforced.append(
                    f"{subject.kind} {subject.id}: egress {kind} not enforced here "
                    "([agent] egress = false: this host does not receive its traffic)"
                )
        limits = []
        for address in subject.addresses:
            for limit in in_segment(
                limits_for(host_prefix(address), rules, directions), subject.segment
            ):
                key = (limit["per"], limit["scope"], str(limit.get("vni", "")))
                first = limited_by.setdefault(key, f"{subject.kind} {subject.id}")
                if first != f"{subject.kind} {subject.id}":
                    result.not_enforced.append(
                        f"{subject.kind} {subject.id}: {address} is limited by {first}'s "
                        "limit (an address both have): one bucket serves both"
                    )
                    continue
                limits.append({**limit, "labels": subject.labels})
        if subject.segment is not None and (note := subject.segment.note(f"port {subject.id}")):
            result.not_enforced.append(note)
        if subject.unlimited:
            result.not_enforced.append(
                f"{subject.kind} {subject.id}: its allowed address pair(s) "
                f"{', '.join(subject.unlimited)} are not limited by xdpath (a limit of a prefix "
                "would hold other ports' and hosts' addresses in it to this port's rate)"
            )
        if limits:
            result.documents[subject.owner] = {"limits": limits}
            result.policies[subject.owner] = subject.policy_id
    return result


def add_rules(result: Plan, security: PortRules) -> None:
    """Puts each port's security group rules into its owner's document
    (beside its limits, if any), and the notes about the ports that are
    not enforced. The rules' allows are xdpath ``admit`` rules, so the
    port's limits (and the operator's blocklist and guards) still apply to
    what they allow."""
    result.not_enforced.extend(security.not_enforced)
    for port, rules in security.rules.items():
        owner = f"{OWNER_PREFIX}port-{port}"
        result.documents.setdefault(owner, {})["rules"] = rules


# The owners each role makes: an agent removes only its own role's, so
# that a host that is network and compute node (all-in-one, DVR) can run
# one agent of each role beside one xdpathd without each deleting the
# other's owners every pass.
ROLE_KINDS = {"network": "fip", "compute": "port"}


def ours(owner: str, role: str) -> bool:
    """An owner an agent of ``role`` made (and may remove)."""
    return owner.startswith(f"{OWNER_PREFIX}{ROLE_KINDS[role]}-")
