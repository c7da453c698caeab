"""From Octavia's objects to xdpath's owner document.

Pure functions over plain dictionaries (the shape of octavia-lib's provider
data models after `octavia_xdpath.tree.plain`): no I/O, no Octavia, no
xdpathd. The worker calls `plan` to make the document every balancer is
given; what xdpath refuses is `octavia_xdpath.refusals`, checked again here.

One Octavia load balancer is one xdpath *owner* (``octavia-<id>``); its
document holds, for every enabled TCP or UDP listener and every VIP address
of the load balancer (``vip_address`` and ``additional_vips``), one xdpath
VIP ``ADDRESS:PORT/tcp|udp`` with the listener's ``allowed_cidrs`` as its
allow list, the default pool's enabled members as backends with their
weights, the pool's health monitor as the VIP's health check, and the
flavor's per-source packet limit as a rate limit on the VIP.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from octavia_xdpath.refusals import (
    MAX_PRIME_RING,
    MONITOR_TYPES,
    Obj,
    Unsupported,
    check_flavor,
    check_listener,
    check_member,
    check_pool,
    enabled,
    pools_of,
    status_codes,
    value_of,
)

Document = dict[str, list[dict[str, Any]]]

OWNER_PREFIX = "octavia-"


def owner_of(loadbalancer_id: str) -> str:
    """The xdpath owner of an Octavia load balancer (1-64 of ``[A-Za-z0-9_.:-]``)."""
    return OWNER_PREFIX + loadbalancer_id


def loadbalancer_of(owner: str) -> str | None:
    """The load balancer id of one of this driver's owners, or None."""
    if owner.startswith(OWNER_PREFIX) and len(owner) > len(OWNER_PREFIX):
        return owner[len(OWNER_PREFIX) :]
    return None


# ---------------------------------------------------------------------------
# The document


@dataclass
class VipUse:
    """Where one xdpath VIP of the document comes from."""

    vip: str
    listener_id: str
    pool_id: str | None


@dataclass
class Plan:
    """An owner document with what each of its parts stands for."""

    owner: str
    document: Document
    vips: list[VipUse] = field(default_factory=list)
    # member id -> (address, pool id) of members in the document's tables.
    members: dict[str, tuple[str, str]] = field(default_factory=dict)
    # pool ids whose VIPs have a health check.
    monitored_pools: set[str] = field(default_factory=set)

    def vips_of_listener(self, listener_id: str) -> list[str]:
        return [use.vip for use in self.vips if use.listener_id == listener_id]

    def vips_of_pool(self, pool_id: str) -> list[str]:
        return [use.vip for use in self.vips if use.pool_id == pool_id]


def vip_text(address: str, port: int, protocol: str) -> str:
    """``203.0.113.10:80/tcp`` or ``[2001:db8::10]:80/tcp``."""
    parsed = ipaddress.ip_address(address)
    host = f"[{parsed.compressed}]" if parsed.version == 6 else parsed.compressed
    return f"{host}:{port}/{protocol.lower()}"


def vip_addresses(loadbalancer: Obj) -> list[str]:
    """The load balancer's VIP addresses: ``vip_address`` then ``additional_vips``."""
    addresses: list[str] = []
    for address in [value_of(loadbalancer, "vip_address")] + [
        value_of(extra, "ip_address") for extra in value_of(loadbalancer, "additional_vips") or ()
    ]:
        if address and address not in addresses:
            addresses.append(str(address))
    return addresses


def canonical_cidr(text: str) -> str:
    return ipaddress.ip_network(text, strict=False).compressed


def _millis(seconds: Any) -> str:
    return f"{round(float(seconds) * 1000)}ms"


def health_request(vip: str, monitor: Obj) -> dict[str, Any]:
    """A health monitor as xdpathd's health check of one VIP."""
    kind = str(value_of(monitor, "type"))
    request: dict[str, Any] = {
        "vip": vip,
        "kind": MONITOR_TYPES.get(kind, kind.lower()),
        "interval": _millis(value_of(monitor, "delay") or 5),
        "timeout": _millis(value_of(monitor, "timeout") or 5),
        # Octavia: max_retries successes bring a member ONLINE,
        # max_retries_down failures take it to ERROR.
        "rise": int(value_of(monitor, "max_retries") or 3),
        "fall": int(value_of(monitor, "max_retries_down") or 3),
    }
    if kind == "HTTP":
        request["path"] = value_of(monitor, "url_path") or "/"
        request["status"] = status_codes(value_of(monitor, "expected_codes") or "200")
    return request


def plan(loadbalancer: Obj) -> Plan:
    """The owner document of a load balancer tree (as DriverLibrary's
    ``get_loadbalancer`` gives it, in plain dictionaries). Raises
    `Unsupported` for anything the ``check_*`` functions refuse."""
    owner = owner_of(str(loadbalancer["loadbalancer_id"]))
    document: Document = {"vips": [], "backends": [], "health": [], "limits": []}
    result = Plan(owner=owner, document=document)
    if not enabled(loadbalancer):
        return result
    flavor: Obj = value_of(loadbalancer, "flavor") or {}
    check_flavor(flavor)
    addresses = vip_addresses(loadbalancer)
    pools = pools_of(loadbalancer)
    listeners = sorted(
        value_of(loadbalancer, "listeners") or (), key=lambda item: str(item.get("listener_id"))
    )
    for listener in listeners:
        check_listener(listener)
        if enabled(listener):
            pool_id = value_of(listener, "default_pool_id")
            pool = pools.get(str(pool_id)) if pool_id else None
            _plan_listener(result, listener, pool, addresses, flavor)
    _check_backends_unique(document)
    return result


def _vip_entry(vip: str, flags: list[str], allow: list[str], flavor: Obj) -> dict[str, Any]:
    entry: dict[str, Any] = {"vip": vip, "flags": list(flags), "allow": allow}
    if flavor.get("encapsulation"):
        entry["encap"] = str(flavor["encapsulation"])
    if flavor.get("gue_port") is not None:
        entry["gue_port"] = int(flavor["gue_port"])
    if flavor.get("ring_size") is not None:
        entry["ring_size"] = int(flavor["ring_size"])
    if flavor.get("sampling_rate") is not None:
        entry["sample_rate"] = int(flavor["sampling_rate"])
    return entry


def _plan_listener(
    result: Plan, listener: Obj, pool: Obj | None, addresses: list[str], flavor: Obj
) -> None:
    """One enabled listener's VIPs (one per VIP address) into the plan."""
    document = result.document
    port = int(listener["protocol_port"])
    flags: list[str] = []
    members: list[Obj] = []
    monitor: Obj | None = None
    if pool is not None:
        check_pool(pool)
        persistence = value_of(pool, "session_persistence") or {}
        if value_of(pool, "lb_algorithm") == "SOURCE_IP" or persistence.get("type") == "SOURCE_IP":
            flags.append("source-hash")
        for member in value_of(pool, "members") or ():
            check_member(member, port)
        if enabled(pool):
            members = sorted(
                (m for m in value_of(pool, "members") or () if enabled(m)),
                key=lambda item: str(item.get("member_id")),
            )
            candidate = value_of(pool, "healthmonitor")
            if candidate and enabled(candidate):
                monitor = candidate
                result.monitored_pools.add(str(pool["pool_id"]))
            for member in members:
                result.members[str(member["member_id"])] = (
                    _address(member["address"]),
                    str(pool["pool_id"]),
                )
    allow = sorted({canonical_cidr(cidr) for cidr in value_of(listener, "allowed_cidrs") or ()})
    for address in addresses:
        vip = vip_text(address, port, str(listener["protocol"]))
        document["vips"].append(_vip_entry(vip, flags, allow, flavor))
        result.vips.append(
            VipUse(
                vip=vip,
                listener_id=str(listener["listener_id"]),
                pool_id=None if pool is None else str(pool["pool_id"]),
            )
        )
        document["backends"].extend(
            {"vip": vip, "address": _address(m["address"]), "weight": _weight(m)} for m in members
        )
        if monitor is not None:
            document["health"].append(health_request(vip, monitor))
        # xdpath's VIP limit covers the VIP's address and protocol on every
        # port: one for each (address, protocol), named by its first VIP.
        limited = {_address_and_protocol(limit["vip"]) for limit in document["limits"]}
        if flavor.get("source_pps_limit") is not None and _address_and_protocol(vip) not in limited:
            document["limits"].append(
                {"vip": vip, "pps": str(int(flavor["source_pps_limit"])), "per": "src"}
            )


def _address_and_protocol(vip: str) -> tuple[str, str]:
    """``203.0.113.10:80/tcp`` -> (``203.0.113.10``, ``tcp``)."""
    host_port, _, protocol = vip.rpartition("/")
    return host_port.rpartition(":")[0], protocol


def _address(text: str) -> str:
    return ipaddress.ip_address(str(text)).compressed


def _weight(member: Obj) -> int:
    weight = value_of(member, "weight")
    return 1 if weight is None else int(weight)


def _check_backends_unique(document: Document) -> None:
    seen: set[tuple[str, str]] = set()
    for backend in document["backends"]:
        key = (backend["vip"], backend["address"])
        if key in seen:
            raise Unsupported(
                f"two members of one pool have the address {backend['address']}: xdpath "
                "balances to addresses (one port, the listener's). Keep one member per "
                "address."
            )
        seen.add(key)


# ---------------------------------------------------------------------------
# Comparing documents


def canonical(document: Obj) -> dict[str, Any]:
    """What matters of a document, in one form for the document the driver
    sends and the one ``GET /v1/owners/{owner}`` shows (which fills in
    defaults: encapsulation, table size, health port, burst)."""
    vips: dict[str, tuple[Any, ...]] = {}
    for vip in document.get("vips") or ():
        encap = vip.get("encap") or "ipip"
        vips[str(vip["vip"])] = (
            encap,
            vip.get("gue_port") if encap == "gue" else None,
            tuple(sorted(vip.get("flags") or ())),
            tuple(sorted(canonical_cidr(cidr) for cidr in vip.get("allow") or ())),
            vip.get("ring_size") or MAX_PRIME_RING,
            vip.get("sample_rate") or 0,
        )
    backends = sorted(
        (str(b["vip"]), ipaddress.ip_address(b["address"]).compressed, int(b.get("weight", 1)))
        for b in document.get("backends") or ()
    )
    health = sorted(
        (
            str(h["vip"]),
            str(h["kind"]),
            str(h.get("path") or "/") if h["kind"] == "http" else "",
            str(h.get("status") or "200") if h["kind"] == "http" else "",
            _as_millis(h.get("interval") or "2s"),
            _as_millis(h.get("timeout") or "1s"),
            int(h.get("rise", 2)),
            int(h.get("fall", 3)),
            int(h.get("port") or 0),
        )
        for h in document.get("health") or ()
        if h.get("kind") != "off"
    )
    limits = sorted(
        (str(limit.get("vip")), str(limit.get("pps")), str(limit.get("per") or "src"))
        for limit in document.get("limits") or ()
    )
    return {"vips": vips, "backends": backends, "health": health, "limits": limits}


def _as_millis(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m)?\s*", str(text))
    if not match:
        return -1
    scale = {"ms": 1, "s": 1000, "m": 60_000, None: 1000}[match.group(2)]
    return int(match.group(1)) * scale


def same(desired: Obj, in_force: Obj) -> bool:
    """Whether a balancer's document (``GET /v1/owners/{owner}``'s
    ``document``) is the desired one."""
    return canonical(desired) == canonical(in_force)


def empty(document: Obj) -> bool:
    return not any(document.get(key) for key in ("vips", "backends", "health", "limits"))


def member_ids(pool: Obj) -> Sequence[str]:
    return [str(member["member_id"]) for member in value_of(pool, "members") or ()]


def all_ids(loadbalancer: Obj) -> dict[str, list[str]]:
    """Every object id of a tree, by octavia-lib's status key."""
    ids: dict[str, list[str]] = {
        "listeners": [],
        "pools": [],
        "members": [],
        "healthmonitors": [],
    }
    for listener in value_of(loadbalancer, "listeners") or ():
        ids["listeners"].append(str(listener["listener_id"]))
    for pool_id, pool in pools_of(loadbalancer).items():
        ids["pools"].append(pool_id)
        ids["members"].extend(member_ids(pool))
        monitor = value_of(pool, "healthmonitor")
        if monitor and value_of(monitor, "healthmonitor_id"):
            ids["healthmonitors"].append(str(monitor["healthmonitor_id"]))
    return ids


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
