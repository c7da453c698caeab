"""What the agent reads from Neutron, through openstacksdk: the QoS
policies with their rules, and the floating IPs (role ``network``) or the
ports (role ``compute``) that policies apply to.

A port's policy is its own, or else its network's (Neutron's rule: a
network's policy applies to its ports that have none, except Neutron's own
``network:*`` ports). A floating IP's policy is its own only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from neutron_xdpath.config import AgentConfig, NeutronSettings
from neutron_xdpath.mapping import Subject

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


def _ports(conn: Connection, host: str | None) -> Iterator[Subject]:
    network_policies = {
        str(network.id): network.qos_policy_id
        for network in conn.network.networks()
        if network.qos_policy_id
    }
    for port in conn.network.ports():
        if host is not None and port.binding_host_id != host:
            continue
        policy = port.qos_policy_id
        if not policy and not str(port.device_owner or "").startswith("network:"):
            policy = network_policies.get(str(port.network_id))
        addresses = tuple(str(ip["ip_address"]) for ip in port.fixed_ips or [] if ip)
        if policy and addresses:
            yield Subject("port", str(port.id), addresses, str(policy))


def security_group_notes(conn: Connection, config: AgentConfig) -> list[str]:
    """Security groups of this agent's ports, each reported as not
    enforced: stateful ones never will be (XDP has no connection tracking
    for the VM's own connections, and half of a stateful group would be
    worse than none), stateless ones are not yet."""
    if config.role != "compute":
        return []
    used: set[str] = set()
    for port in conn.network.ports():
        if config.host is None or port.binding_host_id == config.host:
            used.update(str(group) for group in port.security_group_ids or [])
    notes = []
    for group in conn.network.security_groups():
        if str(group.id) not in used:
            continue
        if group.stateful is False:
            notes.append(f"security group {group.id} (stateless): not enforced by xdpath yet")
        else:
            notes.append(
                f"security group {group.id} (stateful): not handled by xdpath "
                "(XDP has no connection tracking for the VMs' connections)"
            )
    return notes


def subjects(conn: Connection, config: AgentConfig) -> list[Subject]:
    """The objects with a policy that this agent's role enforces."""
    if config.role == "network":
        return list(_floating_ips(conn))
    return list(_ports(conn, config.host))
