"""What the agent reads from Neutron, through openstacksdk: the QoS
policies with their rules, and the floating IPs (role ``network``) or the
ports (role ``compute``) that policies apply to.

A port's rules and limits match the inner headers of its network's VNI
when the network is ``vxlan`` or ``geneve`` (`segments`).

A port's policy is its own, or else its network's (Neutron's rule: a
network's policy applies to its ports that have none, except Neutron's own
``network:*`` ports). A floating IP's policy is its own only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from neutron_xdpath.config import AgentConfig, NeutronSettings
from neutron_xdpath.fwaas import FirewallGroup
from neutron_xdpath.mapping import Subject
from neutron_xdpath.secgroups import Groups, Port
from neutron_xdpath.segments import Segment, of_network

if TYPE_CHECKING:
    from openstack.connection import Connection


def connect(settings: NeutronSettings) -> Connection:
    """An openstacksdk Connection to Neutron as configured."""
    import openstack.connection

    if settings.auth_type in ("none", "noauth"):
        from keystoneauth1 import noauth
        from keystoneauth1 import session as ks_session

        headers = {"X-Project-Id": settings.project_id} if settings.project_id else {}
        session = ks_session.Session(auth=noauth.NoAuth(), additional_headers=headers)
        return openstack.connection.Connection(
            session=session, network_endpoint_override=settings.endpoint
        )
    options: dict[str, Any] = {"auth_type": settings.auth_type, "auth": dict(settings.auth)}
    if settings.region_name:
        options["region_name"] = settings.region_name
    if settings.interface:
        options["interface"] = settings.interface
    if settings.endpoint:
        options["network_endpoint_override"] = settings.endpoint
    return openstack.connection.Connection(**options)


def policies(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every QoS policy's rules, by policy id."""
    return {
        str(policy.id): [dict(rule) for rule in (policy.rules or [])]
        for policy in conn.network.qos_policies()
    }


def _floating_ips(conn: Connection) -> Iterator[Subject]:
    for fip in conn.network.ips():
        if fip.qos_policy_id and fip.floating_ip_address:
            yield Subject("fip", str(fip.id), (str(fip.floating_ip_address),), fip.qos_policy_id)


def segments(conn: Connection) -> dict[str, Segment]:
    """Each network's segment, by network id (``provider:*`` attributes,
    which Neutron shows to admins: the agent's credentials need that)."""
    return {str(network.id): of_network(network) for network in conn.network.networks()}


def _ports(conn: Connection, host: str | None) -> Iterator[Subject]:
    network_policies: dict[str, str] = {}
    network_segments: dict[str, Segment] = {}
    for network in conn.network.networks():
        network_segments[str(network.id)] = of_network(network)
        if network.qos_policy_id:
            network_policies[str(network.id)] = network.qos_policy_id
    for port in conn.network.ports():
        if host is not None and port.binding_host_id != host:
            continue
        policy = port.qos_policy_id
        if not policy and not str(port.device_owner or "").startswith("network:"):
            policy = network_policies.get(str(port.network_id))
        addresses = tuple(str(ip["ip_address"]) for ip in port.fixed_ips or [] if ip)
        # A port's policy limits all it receives: its allowed address pairs'
        # addresses too (a VRRP or Octavia VIP), each with a bucket as its
        # fixed IPs. A prefix pair cannot be: a limit of the prefix would
        # hold other ports and hosts in it to this port's rate. It is said.
        pairs = pair_addresses(port, addresses)
        unlimited = tuple(pair for pair in pairs if "/" in pair)
        addresses += tuple(pair for pair in pairs if "/" not in pair)
        if policy and addresses:
            segment = network_segments.get(str(port.network_id))
            yield Subject("port", str(port.id), addresses, str(policy), segment, unlimited)


def pair_addresses(port: Any, fixed: Sequence[str]) -> tuple[str, ...]:
    """A port's allowed address pairs' addresses (``10.0.0.9``, or a prefix
    ``10.0.0.0/24``; a host prefix as its address), those not among its
    fixed IPs."""
    out: list[str] = []
    for pair in port.allowed_address_pairs or []:
        text = pair.get("ip_address") if isinstance(pair, dict) else None
        if not text:
            continue
        network = ipaddress.ip_network(str(text), strict=False)
        address = (
            str(network.network_address)
            if network.prefixlen == network.max_prefixlen
            else str(network)
        )
        if address not in fixed and address not in out:
            out.append(address)
    return tuple(out)


def security_groups(conn: Connection, config: AgentConfig) -> tuple[list[Port], Groups]:
    """This agent's ports (role ``compute``; not Neutron's own
    ``network:*`` ports) with their security groups, and what expanding
    those groups needs: every group's statefulness and rules, every
    group's member addresses (all ports, on any host), every address
    group's prefixes."""
    if config.role != "compute":
        return [], Groups()
    groups = Groups()
    ports: list[Port] = []
    network_segments = segments(conn)
    for port in conn.network.ports():
        addresses = tuple(str(ip["ip_address"]) for ip in port.fixed_ips or [] if ip)
        # Neutron counts a port's allowed address pairs as its addresses in
        # remote groups (securitygroups_rpc_base._select_ips_for_remote_group),
        # prefixes too (as sources they are exact), and filters all the port
        # receives: an address pair (a VRRP or Octavia VIP) gets the port's
        # rules. A prefix pair cannot: xdpath matches frames by destination
        # address, and rules for the prefix would filter other ports' and
        # hosts' frames in it by this port's groups. It is reported.
        pairs = pair_addresses(port, addresses)
        unfiltered = tuple(pair for pair in pairs if "/" in pair)
        ids = tuple(str(group) for group in port.security_group_ids or [])
        for group_id in ids:
            groups.members.setdefault(group_id, []).extend(addresses + pairs)
        addresses += tuple(pair for pair in pairs if "/" not in pair)
        if config.host is not None and port.binding_host_id != config.host:
            continue
        if str(port.device_owner or "").startswith("network:") or not addresses:
            continue
        segment = network_segments.get(str(port.network_id))
        ports.append(Port(str(port.id), addresses, ids, segment, unfiltered))
    used = {group for port in ports for group in port.groups}
    for security_group in conn.network.security_groups():
        if str(security_group.id) in used:
            groups.stateful[str(security_group.id)] = security_group.stateful is not False
            groups.rules[str(security_group.id)] = [
                dict(rule) for rule in (security_group.security_group_rules or [])
            ]
    if any(
        rule.get("remote_address_group_id") for rules in groups.rules.values() for rule in rules
    ):
        for address_group in conn.network.address_groups():
            groups.address_groups[str(address_group.id)] = [
                str(prefix) for prefix in address_group.addresses or []
            ]
    return ports, groups


def firewall_groups(conn: Connection, config: AgentConfig) -> list[FirewallGroup]:
    """Every firewall group (role ``compute``) with its ingress policy's
    rules in the policy's order; none where Neutron has no FWaaS v2 (404).
    Any other error is raised (the pass fails, the rules in force stay)."""
    if config.role != "compute":
        return []
    from openstack import exceptions

    try:
        groups = list(conn.network.firewall_groups())
    except exceptions.NotFoundException:
        return []
    policies = {str(p.id): list(p.firewall_rules or []) for p in conn.network.firewall_policies()}
    rules = {str(rule.id): dict(rule) for rule in conn.network.firewall_rules()}
    out = []
    for group in groups:
        ingress, problem = None, None
        if policy := group.ingress_firewall_policy_id:
            ids = [str(r) for r in policies.get(str(policy), [])]
            ingress = tuple(rules[r] for r in ids if r in rules)
            if str(policy) not in policies or len(ingress) != len(ids):
                problem = f"its ingress policy {policy} or one of its rules cannot be read"
        out.append(
            FirewallGroup(
                id=str(group.id),
                ports=tuple(str(port) for port in group.ports or []),
                ingress=ingress,
                egress=bool(group.egress_firewall_policy_id),
                admin_state_up=group.admin_state_up is not False,
                problem=problem,
            )
        )
    return out


def subjects(conn: Connection, config: AgentConfig) -> list[Subject]:
    """The objects with a policy that this agent's role enforces."""
    if config.role == "network":
        return list(_floating_ips(conn))
    return list(_ports(conn, config.host))
