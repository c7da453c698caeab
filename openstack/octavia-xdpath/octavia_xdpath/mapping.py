"""From Octavia's objects to xdpath's owner document, and what xdpath refuses.

Pure functions over plain dictionaries (the shape of octavia-lib's provider
data models after `octavia_xdpath.tree.plain`): no I/O, no Octavia, no
xdpathd. The driver calls the ``check_*`` functions in the API request (a
refusal becomes octavia-lib's ``UnsupportedOptionError``, which Octavia
answers with HTTP 400 and the message), and `plan` in its worker to make
the document every balancer is given.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]
Document = dict[str, list[dict[str, Any]]]

OWNER_PREFIX = "octavia-"

# What xdpath does, said once for the messages.
L4_ONLY = (
    "xdpath is a layer-4 balancer (TCP and UDP, direct server return): it does not "
    "terminate or parse HTTP"
)

LISTENER_PROTOCOLS = ("TCP", "UDP")
POOL_PROTOCOLS = ("TCP", "UDP")
ALGORITHMS = ("SOURCE_IP_PORT", "SOURCE_IP")
# Octavia's monitor types and xdpathd's check kinds.
MONITOR_TYPES: dict[str, str] = {"TCP": "tcp", "HTTP": "http", "PING": "ping", "UDP-CONNECT": "udp"}

# Flavor metadata keys and what they mean (get_supported_flavor_metadata).
FLAVOR_METADATA: dict[str, str] = {
    "encapsulation": "How the balancers send packets to the members: ipip (default) or gue. "
    "Members must run `xdpath decap` (with --gue-port for gue).",
    "gue_port": "The members' GUE UDP port (1-65535); required with encapsulation gue.",
    "source_pps_limit": "Packets per second each client address may send to each VIP "
    "address of the load balancer, per protocol (a token bucket per source over all the "
    "listeners' ports of that address; dropped at XDP above it).",
    "ring_size": "The Maglev table size of every VIP: a prime from 7 to 65537 (default "
    "65537). The same on every balancer, so every balancer picks the same member.",
}

# Flavor keys the issue names that xdpathd's per-owner API cannot carry,
# with what to do instead.
FLAVOR_REFUSED: dict[str, str] = {
    "syn_cookies": "SYN cookies are a setting of the balancer host, not of one load "
    "balancer: xdpathd's owner API has no per-VIP SYN cookies. Enable them on the "
    "balancer hosts (`xdpath guard syn-cookies`, or the balancers' xdpathd --config) "
    "for the listener ports instead.",
    "sampling_rate": "Sampling is a setting of the balancer's interface, not of one load "
    "balancer: xdpathd's owner API has no per-VIP sampling. Set it on the balancer "
    "hosts (`xdpath sample IFACE N`, or the balancers' xdpathd --config) instead.",
}

# Availability-zone metadata: none (see get_supported_availability_zone_metadata).
AZ_METADATA: dict[str, str] = {}

MAX_PRIME_RING = 65537


class Unsupported(ValueError):
    """Something xdpath cannot do; the message says what to use instead."""


def owner_of(loadbalancer_id: str) -> str:
    """The xdpath owner of an Octavia load balancer (1-64 of ``[A-Za-z0-9_.:-]``)."""
    return OWNER_PREFIX + loadbalancer_id


def loadbalancer_of(owner: str) -> str | None:
    """The load balancer id of one of this driver's owners, or None."""
    if owner.startswith(OWNER_PREFIX) and len(owner) > len(OWNER_PREFIX):
        return owner[len(OWNER_PREFIX) :]
    return None


def _set(obj: Obj, key: str) -> Any:
    """A field, None when missing (unset)."""
    return obj.get(key)


def _enabled(obj: Obj) -> bool:
    return _set(obj, "admin_state_up") is not False


# ---------------------------------------------------------------------------
# Refusals


def check_listener(listener: Obj) -> None:
    """Refuses what xdpath cannot do with a listener (or a listener update:
    only the fields given are checked)."""
    protocol = _set(listener, "protocol")
    if protocol is not None and protocol not in LISTENER_PROTOCOLS:
        if protocol in ("HTTP", "HTTPS", "TERMINATED_HTTPS"):
            raise Unsupported(
                f"listener protocol {protocol}: {L4_ONLY}. Use a TCP listener (HTTPS passes "
                "through a TCP listener untouched, TLS ending on the members), or a layer-7 "
                "provider such as amphora for HTTP features."
            )
        raise Unsupported(
            f"listener protocol {protocol}: xdpath balances TCP and UDP only. "
            "Use a TCP or UDP listener."
        )
    limit = _set(listener, "connection_limit")
    if limit is not None and limit != -1:
        raise Unsupported(
            f"connection_limit {limit}: xdpath does not count connections per listener. "
            "Leave connection_limit at -1; to bound what one client can send use the "
            "flavor's source_pps_limit."
        )
    if _set(listener, "l7policies"):
        raise Unsupported(
            f"L7 policies: {L4_ONLY}. Use a layer-7 provider such as amphora for L7 policies."
        )
    for key in ("default_tls_container_ref", "sni_container_refs", "client_ca_tls_container_ref"):
        if _set(listener, key):
            raise Unsupported(
                f"{key}: {L4_ONLY} and never holds certificates. Use a TCP listener and "
                "end TLS on the members."
            )
    if _set(listener, "insert_headers"):
        raise Unsupported(f"insert_headers: {L4_ONLY}, so it cannot add headers.")
    for cidr in _set(listener, "allowed_cidrs") or ():
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as error:
            raise Unsupported(f"allowed_cidrs: {cidr!r} is not a CIDR ({error})") from None


def check_pool(pool: Obj) -> None:
    """Refuses what xdpath cannot do with a pool (or a pool update), and its
    members and health monitor when given with it."""
    protocol = _set(pool, "protocol")
    if protocol is not None and protocol not in POOL_PROTOCOLS:
        if protocol in ("PROXY", "PROXYV2"):
            raise Unsupported(
                f"pool protocol {protocol}: xdpath forwards the client's own packets to the "
                "members (direct server return), so the members see the client's address "
                "without the PROXY protocol. Use a TCP pool."
            )
        raise Unsupported(
            f"pool protocol {protocol}: {L4_ONLY}. Use a TCP or UDP pool (the same protocol "
            "as its listener)."
        )
    algorithm = _set(pool, "lb_algorithm")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise Unsupported(
            f"lb_algorithm {algorithm}: xdpath spreads connections with a consistent hash "
            "(Maglev) that every balancer computes alike, so it keeps no per-member "
            "round-robin position or connection count. Use SOURCE_IP_PORT (hash of the "
            "connection: the closest to ROUND_ROBIN, member weights respected) or "
            "SOURCE_IP (hash of the client address)."
        )
    persistence = _set(pool, "session_persistence")
    if persistence:
        kind = persistence.get("type")
        if kind != "SOURCE_IP":
            raise Unsupported(
                f"session_persistence {kind}: {L4_ONLY}, so it cannot see cookies. Use "
                "session_persistence SOURCE_IP (or lb_algorithm SOURCE_IP): a client "
                "address always reaches the same member."
            )
        granularity = persistence.get("persistence_granularity")
        if granularity not in (None, "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"):
            raise Unsupported(
                f"persistence_granularity {granularity}: xdpath hashes the whole client "
                "address. Leave persistence_granularity unset."
            )
    if _set(pool, "tls_enabled"):
        raise Unsupported(
            f"tls_enabled: {L4_ONLY}, so it cannot open TLS to the members. "
            "Leave tls_enabled false (the client's TLS reaches the members as it is)."
        )
    for key in ("tls_container_ref", "ca_tls_container_ref", "crl_container_ref"):
        if _set(pool, key):
            raise Unsupported(f"{key}: {L4_ONLY} and never holds certificates.")
    for member in _set(pool, "members") or ():
        check_member(member)
    monitor = _set(pool, "healthmonitor")
    if monitor:
        check_healthmonitor(monitor)


def check_member(member: Obj, listener_port: int | None = None) -> None:
    """Refuses what xdpath cannot do with a member; ``listener_port`` is the
    port of the listener the member's pool serves, when it has one."""
    port = _set(member, "protocol_port")
    if listener_port is not None and port is not None and port != listener_port:
        raise Unsupported(
            f"member protocol_port {port} differs from the listener's port {listener_port}: "
            "xdpath encapsulates the client's packet unchanged (no port translation), so "
            f"the member must serve on {listener_port}. Use protocol_port {listener_port}."
        )
    if _set(member, "backup"):
        raise Unsupported(
            "backup members: xdpath's Maglev table has no standby tier. Use weight 0 to "
            "keep a member in the pool without new connections, or a health monitor to "
            "take failed members out."
        )
    if _set(member, "monitor_address") or _set(member, "monitor_port"):
        raise Unsupported(
            "monitor_address/monitor_port: xdpathd probes each member at its own address on "
            "the listener's port. Leave them unset."
        )
    address = _set(member, "address")
    if address is not None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise Unsupported(f"member address {address!r} is not an IP address") from None


def check_healthmonitor(monitor: Obj) -> None:
    """Refuses what xdpathd's health checker cannot do."""
    kind = _set(monitor, "type")
    if kind is not None and kind not in MONITOR_TYPES:
        raise Unsupported(
            f"health monitor type {kind}: xdpathd's health checker probes with a TCP "
            "connection, an HTTP GET, an ICMP echo or a UDP datagram. Use a TCP, HTTP, "
            "PING or UDP-CONNECT monitor."
        )
    method = _set(monitor, "http_method")
    if method is not None and method != "GET":
        raise Unsupported(
            f"http_method {method}: xdpathd's HTTP check sends GET. Use http_method GET."
        )
    if _set(monitor, "domain_name"):
        raise Unsupported(
            "domain_name: xdpathd's HTTP check sends the member's address as Host. "
            "Leave domain_name unset."
        )
    version = _set(monitor, "http_version")
    if version is not None and float(version) not in (1.0, 1.1):
        raise Unsupported(f"http_version {version}: xdpathd's HTTP check speaks HTTP/1.1.")
    codes = _set(monitor, "expected_codes")
    if codes is not None:
        status_codes(codes)
    path = _set(monitor, "url_path")
    if path is not None and (not path.startswith("/") or re.search(r"\s", path)):
        raise Unsupported(f"url_path {path!r} must start with / and hold no spaces")
    delay, timeout = _set(monitor, "delay"), _set(monitor, "timeout")
    if delay is not None and timeout is not None and timeout > delay:
        raise Unsupported(
            f"timeout {timeout} s is longer than delay {delay} s: xdpathd needs a check to "
            "end before the next starts. Use a timeout at most the delay."
        )


def status_codes(codes: str) -> str:
    """Octavia's ``expected_codes`` (``200``, ``200,202``, ``200-204``) as
    xdpathd's ``status`` text."""
    text = re.sub(r"\s+", "", codes)
    if not re.fullmatch(r"\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*", text):
        raise Unsupported(f"expected_codes {codes!r}: use a code, a list or a range (200-204)")
    return text


def check_flavor(metadata: Obj) -> None:
    """Refuses flavor metadata xdpath does not know or cannot apply."""
    for key in metadata:
        if key in FLAVOR_REFUSED:
            raise Unsupported(f"flavor {key}: {FLAVOR_REFUSED[key]}")
        if key not in FLAVOR_METADATA:
            raise Unsupported(
                f"flavor {key}: not an xdpath flavor option; the options are "
                + ", ".join(sorted(FLAVOR_METADATA))
            )
    encap = metadata.get("encapsulation")
    if encap is not None and encap not in ("ipip", "gue"):
        raise Unsupported(f"flavor encapsulation {encap!r}: use ipip or gue")
    port = metadata.get("gue_port")
    if port is not None and not _int_in(port, 1, 65535):
        raise Unsupported(f"flavor gue_port {port!r}: use a UDP port, 1 to 65535")
    if encap == "gue" and port is None:
        raise Unsupported("flavor encapsulation gue needs gue_port (the members' GUE port)")
    if port is not None and encap != "gue":
        raise Unsupported("flavor gue_port is for encapsulation gue; set encapsulation gue")
    limit = metadata.get("source_pps_limit")
    if limit is not None and not _int_in(limit, 1, 1_000_000_000):
        raise Unsupported(f"flavor source_pps_limit {limit!r}: use packets per second, >= 1")
    ring = metadata.get("ring_size")
    if ring is not None and not (_int_in(ring, 7, MAX_PRIME_RING) and _prime(int(ring))):
        raise Unsupported(f"flavor ring_size {ring!r}: use a prime from 7 to {MAX_PRIME_RING}")


def check_availability_zone(metadata: Obj) -> None:
    """Refuses availability-zone metadata: xdpath has none (every balancer of
    the driver's fleet serves every load balancer)."""
    for key in metadata:
        raise Unsupported(
            f"availability zone metadata {key}: the xdpath driver has no availability-zone "
            "options; every balancer in [xdpath] balancer_endpoints serves every load "
            "balancer (run one Octavia provider entry per fleet instead)."
        )


def _int_in(value: Any, low: int, high: int) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = int(value)
    except (TypeError, ValueError):
        return False
    return str(number) == str(value).strip() and low <= number <= high


def _prime(number: int) -> bool:
    return number > 1 and all(number % d for d in range(2, int(number**0.5) + 1))


def check_loadbalancer(loadbalancer: Obj) -> None:
    """Everything in a (fully populated) load balancer create."""
    flavor = _set(loadbalancer, "flavor")
    if flavor:
        check_flavor(flavor)
    pools = pools_of(loadbalancer)
    for pool in pools.values():
        check_pool(pool)
    for listener in _set(loadbalancer, "listeners") or ():
        check_listener(listener)
        default = pools.get(str(_set(listener, "default_pool_id")))
        for member in (default or {}).get("members") or ():
            check_member(member, _set(listener, "protocol_port"))


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
    for address in [_set(loadbalancer, "vip_address")] + [
        _set(extra, "ip_address") for extra in _set(loadbalancer, "additional_vips") or ()
    ]:
        if address and address not in addresses:
            addresses.append(str(address))
    return addresses


def pools_of(loadbalancer: Obj) -> dict[str, Obj]:
    """Every pool of a load balancer tree by id (its ``pools`` and its
    listeners' ``default_pool``)."""
    pools: dict[str, Obj] = {}
    for listener in _set(loadbalancer, "listeners") or ():
        pool = _set(listener, "default_pool")
        if pool and _set(pool, "pool_id"):
            pools[str(pool["pool_id"])] = pool
    for pool in _set(loadbalancer, "pools") or ():
        if _set(pool, "pool_id"):
            pools[str(pool["pool_id"])] = pool
    return pools


def canonical_cidr(text: str) -> str:
    return ipaddress.ip_network(text, strict=False).compressed


def _millis(seconds: Any) -> str:
    return f"{round(float(seconds) * 1000)}ms"


def health_request(vip: str, monitor: Obj) -> dict[str, Any]:
    """A health monitor as xdpathd's health check of one VIP."""
    kind = str(_set(monitor, "type"))
    request: dict[str, Any] = {
        "vip": vip,
        "kind": MONITOR_TYPES.get(kind, kind.lower()),
        "interval": _millis(_set(monitor, "delay") or 5),
        "timeout": _millis(_set(monitor, "timeout") or 5),
        # Octavia: max_retries successes bring a member ONLINE,
        # max_retries_down failures take it to ERROR.
        "rise": int(_set(monitor, "max_retries") or 3),
        "fall": int(_set(monitor, "max_retries_down") or 3),
    }
    if kind == "HTTP":
        request["path"] = _set(monitor, "url_path") or "/"
        request["status"] = status_codes(_set(monitor, "expected_codes") or "200")
    return request


def plan(loadbalancer: Obj) -> Plan:
    """The owner document of a load balancer tree (as DriverLibrary's
    ``get_loadbalancer`` gives it, in plain dictionaries). Raises
    `Unsupported` for anything the ``check_*`` functions refuse."""
    owner = owner_of(str(loadbalancer["loadbalancer_id"]))
    document: Document = {"vips": [], "backends": [], "health": [], "limits": []}
    result = Plan(owner=owner, document=document)
    if not _enabled(loadbalancer):
        return result
    flavor: Obj = _set(loadbalancer, "flavor") or {}
    check_flavor(flavor)
    addresses = vip_addresses(loadbalancer)
    pools = pools_of(loadbalancer)
    listeners = sorted(
        _set(loadbalancer, "listeners") or (), key=lambda item: str(item.get("listener_id"))
    )
    for listener in listeners:
        check_listener(listener)
        if _enabled(listener):
            pool_id = _set(listener, "default_pool_id")
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
        persistence = _set(pool, "session_persistence") or {}
        if _set(pool, "lb_algorithm") == "SOURCE_IP" or persistence.get("type") == "SOURCE_IP":
            flags.append("source-hash")
        for member in _set(pool, "members") or ():
            check_member(member, port)
        if _enabled(pool):
            members = sorted(
                (m for m in _set(pool, "members") or () if _enabled(m)),
                key=lambda item: str(item.get("member_id")),
            )
            candidate = _set(pool, "healthmonitor")
            if candidate and _enabled(candidate):
                monitor = candidate
                result.monitored_pools.add(str(pool["pool_id"]))
            for member in members:
                result.members[str(member["member_id"])] = (
                    _address(member["address"]),
                    str(pool["pool_id"]),
                )
    allow = sorted({canonical_cidr(cidr) for cidr in _set(listener, "allowed_cidrs") or ()})
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
    weight = _set(member, "weight")
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
    return [str(member["member_id"]) for member in _set(pool, "members") or ()]


def all_ids(loadbalancer: Obj) -> dict[str, list[str]]:
    """Every object id of a tree, by octavia-lib's status key."""
    ids: dict[str, list[str]] = {
        "listeners": [],
        "pools": [],
        "members": [],
        "healthmonitors": [],
    }
    for listener in _set(loadbalancer, "listeners") or ():
        ids["listeners"].append(str(listener["listener_id"]))
    for pool_id, pool in pools_of(loadbalancer).items():
        ids["pools"].append(pool_id)
        ids["members"].extend(member_ids(pool))
        monitor = _set(pool, "healthmonitor")
        if monitor and _set(monitor, "healthmonitor_id"):
            ids["healthmonitors"].append(str(monitor["healthmonitor_id"]))
    return ids


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
