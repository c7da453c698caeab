"""What xdpath refuses of Octavia's objects, with what to use instead.

Pure functions over plain dictionaries (the shape of octavia-lib's provider
data models after `octavia_xdpath.tree.plain`): no I/O, no Octavia, no
xdpathd. The driver calls the ``check_*`` functions in the API request (a
refusal is `Unsupported`, which the driver raises as octavia-lib's
``UnsupportedOptionError``: Octavia answers with the message and nothing
changes); `octavia_xdpath.mapping.plan` calls them again before it makes a
document, so nothing refused is ever served half.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

Obj = Mapping[str, Any]

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
    "sampling_rate": "Sample 1 in N of the load balancer's frames (1 to 16777216) on the "
    "balancers, for sFlow, IPFIX and top talkers, in place of their interfaces' rate (each "
    "VIP's own sample rate). Where samples go is the balancers' setting (xdpathd --config).",
    "ring_size": "The Maglev table size of every VIP: a prime from 7 to 65537 (default "
    "65537). The same on every balancer, so every balancer picks the same member.",
}

# Flavor keys the issue names that xdpathd's per-owner API cannot carry,
# with what to do instead.
FLAVOR_REFUSED: dict[str, str] = {
    "syn_cookies": "SYN cookies cannot protect a VIP under direct server return: the "
    "member must see the client's SYN and answer it itself (the replies never cross a "
    "balancer), so a connection a balancer had answered with a cookie could not be "
    "handed to a member; xdpath's SYN cookies protect the balancer host's own services "
    "and never take a VIP's SYNs. Against SYN floods to a VIP use source_pps_limit (a "
    "per-source packet limit on the VIP, at XDP) and SYN cookies on the members "
    "(net.ipv4.tcp_syncookies).",
}

# Availability-zone metadata: none (see get_supported_availability_zone_metadata).
AZ_METADATA: dict[str, str] = {}

MAX_PRIME_RING = 65537
# xdpathd's largest sample rate (2^24).
MAX_SAMPLE_RATE = 1 << 24


class Unsupported(ValueError):
    """Something xdpath cannot do; the message says what to use instead."""


def value_of(obj: Obj, key: str) -> Any:
    """A field, None when missing (unset)."""
    return obj.get(key)


def enabled(obj: Obj) -> bool:
    return value_of(obj, "admin_state_up") is not False


# ---------------------------------------------------------------------------
# Refusals


def check_listener(listener: Obj) -> None:
    """Refuses what xdpath cannot do with a listener (or a listener update:
    only the fields given are checked)."""
    protocol = value_of(listener, "protocol")
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
    limit = value_of(listener, "connection_limit")
    if limit is not None and limit != -1:
        raise Unsupported(
            f"connection_limit {limit}: xdpath does not count connections per listener. "
            "Leave connection_limit at -1; to bound what one client can send use the "
            "flavor's source_pps_limit."
        )
    if value_of(listener, "l7policies"):
        raise Unsupported(
            f"L7 policies: {L4_ONLY}. Use a layer-7 provider such as amphora for L7 policies."
        )
    for key in ("default_tls_container_ref", "sni_container_refs", "client_ca_tls_container_ref"):
        if value_of(listener, key):
            raise Unsupported(
                f"{key}: {L4_ONLY} and never holds certificates. Use a TCP listener and "
                "end TLS on the members."
            )
    if value_of(listener, "insert_headers"):
        raise Unsupported(f"insert_headers: {L4_ONLY}, so it cannot add headers.")
    for cidr in value_of(listener, "allowed_cidrs") or ():
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as error:
            raise Unsupported(f"allowed_cidrs: {cidr!r} is not a CIDR ({error})") from None


def check_pool(pool: Obj) -> None:
    """Refuses what xdpath cannot do with a pool (or a pool update), and its
    members and health monitor when given with it."""
    protocol = value_of(pool, "protocol")
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
    algorithm = value_of(pool, "lb_algorithm")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise Unsupported(
            f"lb_algorithm {algorithm}: xdpath spreads connections with a consistent hash "
            "(Maglev) that every balancer computes alike, so it keeps no per-member "
            "round-robin position or connection count. Use SOURCE_IP_PORT (hash of the "
            "connection: the closest to ROUND_ROBIN, member weights respected) or "
            "SOURCE_IP (hash of the client address)."
        )
    persistence = value_of(pool, "session_persistence")
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
    if value_of(pool, "tls_enabled"):
        raise Unsupported(
            f"tls_enabled: {L4_ONLY}, so it cannot open TLS to the members. "
            "Leave tls_enabled false (the client's TLS reaches the members as it is)."
        )
    for key in ("tls_container_ref", "ca_tls_container_ref", "crl_container_ref"):
        if value_of(pool, key):
            raise Unsupported(f"{key}: {L4_ONLY} and never holds certificates.")
    for member in value_of(pool, "members") or ():
        check_member(member)
    monitor = value_of(pool, "healthmonitor")
    if monitor:
        check_healthmonitor(monitor)


def check_member(member: Obj, listener_port: int | None = None) -> None:
    """Refuses what xdpath cannot do with a member; ``listener_port`` is the
    port of the listener the member's pool serves, when it has one."""
    port = value_of(member, "protocol_port")
    if listener_port is not None and port is not None and port != listener_port:
        raise Unsupported(
            f"member protocol_port {port} differs from the listener's port {listener_port}: "
            "xdpath encapsulates the client's packet unchanged (no port translation), so "
            f"the member must serve on {listener_port}. Use protocol_port {listener_port}."
        )
    if value_of(member, "backup"):
        raise Unsupported(
            "backup members: xdpath's Maglev table has no standby tier. Use weight 0 to "
            "keep a member in the pool without new connections, or a health monitor to "
            "take failed members out."
        )
    if value_of(member, "monitor_address") or value_of(member, "monitor_port"):
        raise Unsupported(
            "monitor_address/monitor_port: xdpathd probes each member at its own address on "
            "the listener's port. Leave them unset."
        )
    address = value_of(member, "address")
    if address is not None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise Unsupported(f"member address {address!r} is not an IP address") from None


def check_members_unique(members: Iterable[Obj]) -> None:
    """Refuses two members of one pool at one address. Addresses are
    compared as addresses (``2001:db8:1::11`` and ``2001:db8:1:0::11`` are
    one), as the balancers key their backends; Octavia compares the strings
    and would accept both, and the worker could then serve none of the load
    balancer's later changes. Disabled members count too: enabling one
    later must not make the load balancer unservable."""
    seen: dict[str, Any] = {}
    for member in members:
        address = value_of(member, "address")
        if address is None:
            continue
        try:
            key = ipaddress.ip_address(str(address)).compressed
        except ValueError:
            continue  # check_member says what is wrong with it
        identity = value_of(member, "member_id")
        if key in seen and (identity is None or seen[key] != identity):
            raise Unsupported(
                f"two members of one pool have the address {key}: xdpath balances to "
                "addresses (one port, the listener's). Keep one member per address."
            )
        seen[key] = identity


def check_healthmonitor(monitor: Obj) -> None:
    """Refuses what xdpathd's health checker cannot do."""
    kind = value_of(monitor, "type")
    if kind is not None and kind not in MONITOR_TYPES:
        raise Unsupported(
            f"health monitor type {kind}: xdpathd's health checker probes with a TCP "
            "connection, an HTTP GET, an ICMP echo or a UDP datagram. Use a TCP, HTTP, "
            "PING or UDP-CONNECT monitor."
        )
    method = value_of(monitor, "http_method")
    if method is not None and method != "GET":
        raise Unsupported(
            f"http_method {method}: xdpathd's HTTP check sends GET. Use http_method GET."
        )
    if value_of(monitor, "domain_name"):
        raise Unsupported(
            "domain_name: xdpathd's HTTP check sends the member's address as Host. "
            "Leave domain_name unset."
        )
    version = value_of(monitor, "http_version")
    if version is not None and float(version) not in (1.0, 1.1):
        raise Unsupported(f"http_version {version}: xdpathd's HTTP check speaks HTTP/1.1.")
    codes = value_of(monitor, "expected_codes")
    if codes is not None:
        status_codes(codes)
    path = value_of(monitor, "url_path")
    if path is not None and (not path.startswith("/") or re.search(r"\s", path)):
        raise Unsupported(f"url_path {path!r} must start with / and hold no spaces")
    delay, timeout = value_of(monitor, "delay"), value_of(monitor, "timeout")
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
    rate = metadata.get("sampling_rate")
    if rate is not None and not _int_in(rate, 1, MAX_SAMPLE_RATE):
        raise Unsupported(
            f"flavor sampling_rate {rate!r}: use 1 in N frames, N from 1 to {MAX_SAMPLE_RATE}"
        )
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
    flavor = value_of(loadbalancer, "flavor")
    if flavor:
        check_flavor(flavor)
    pools = pools_of(loadbalancer)
    for pool in pools.values():
        check_pool(pool)
        check_members_unique(value_of(pool, "members") or ())
    for listener in value_of(loadbalancer, "listeners") or ():
        check_listener(listener)
        default = pools.get(str(value_of(listener, "default_pool_id")))
        for member in (default or {}).get("members") or ():
            check_member(member, value_of(listener, "protocol_port"))


def pools_of(loadbalancer: Obj) -> dict[str, Obj]:
    """Every pool of a load balancer tree by id (its ``pools`` and its
    listeners' ``default_pool``)."""
    pools: dict[str, Obj] = {}
    for listener in value_of(loadbalancer, "listeners") or ():
        pool = value_of(listener, "default_pool")
        if pool and value_of(pool, "pool_id"):
            pools[str(pool["pool_id"])] = pool
    for pool in value_of(loadbalancer, "pools") or ():
        if value_of(pool, "pool_id"):
            pools[str(pool["pool_id"])] = pool
    return pools
