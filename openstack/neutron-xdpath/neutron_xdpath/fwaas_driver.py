"""The FWaaS v2 service driver ``xdpath``: what neutron-fwaas may ask of
xdpath.

neutron-fwaas accepts a firewall group on a VM port (``compute:*``) only
if its service driver says the port is supported (`is_supported_l2_port`,
asked once the port is bound); its own drivers support only ports that
their L2 agent (Open vSwitch, non-hybrid) or OVN router serves. xdpath
enforces by address, whatever plugs the VM in, so this driver supports
every bound VM port, and no router port (routed traffic is not filtered
by the compute nodes' xdpath).

It keeps Neutron's FWaaS database as neutron-fwaas's ``FirewallDriverDB``
does and sends nothing anywhere: ``neutron-xdpath-agent`` (role
``compute``) reads the firewall groups through the API and enforces their
ingress policies (`neutron_xdpath.fwaas`). So no group waits in a
``PENDING_*`` state for an agent's answer.

Loaded into neutron-server only, where neutron-fwaas is installed
(``[service_providers] service_provider =
FIREWALL_V2:xdpath:neutron_xdpath.fwaas_driver.XdpathFirewallDriver:default``):
the one module of this package that imports more than neutron-lib.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neutron_fwaas.services.firewall.service_drivers import (  # type: ignore[import-untyped]
    driver_api,
)
from neutron_lib import exceptions

from neutron_xdpath import fwaas
from neutron_xdpath.secgroups import Unexpressible


def refuse_unexpressible(rule: Mapping[str, Any]) -> None:
    """A rule xdpath cannot enforce (`fwaas.check_rule`) as Neutron's
    InvalidInput (HTTP 400), inside the rule's transaction: nothing is
    stored. Accepted, it would put every group that uses it out of force."""
    try:
        fwaas.check_rule(rule)
    except Unexpressible as why:
        raise exceptions.InvalidInput(
            error_message=f"xdpath cannot enforce this firewall rule: {why}"
        ) from None


class XdpathFirewallDriver(driver_api.FirewallDriverDB):  # type: ignore[misc]
    """Every bound VM port is supported; router ports are not."""

    def is_supported_l2_port(self, port: dict[str, Any]) -> bool:
        return True

    def is_supported_l3_port(self, port: dict[str, Any]) -> bool:
        return False

    def create_firewall_rule_precommit(self, context: Any, firewall_rule: dict[str, Any]) -> None:
        refuse_unexpressible(firewall_rule)

    def update_firewall_rule_precommit(
        self, context: Any, old_firewall_rule: dict[str, Any], new_firewall_rule: dict[str, Any]
    ) -> None:
        refuse_unexpressible(new_firewall_rule)
