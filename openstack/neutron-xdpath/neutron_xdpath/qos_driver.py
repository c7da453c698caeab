"""The QoS driver: what Neutron may ask of xdpath.

Neutron's QoS plug-in accepts a rule on a port only if a registered QoS
driver supports its type and parameters (`supported_rules`) and says yes
to the port (`validate_rule_for_port`); ``GET /v2.0/qos/rule-types`` lists
what the drivers support. This one supports ``packet_rate_limit`` and
``bandwidth_limit``:

- ``ingress`` (traffic *to* the port's address or floating IP) always: an
  xdpath host receives it (network node: external interface; compute node:
  tunnel interface) and counts it in a token bucket per destination;
- ``egress`` (traffic *from* it) only when ``[ml2_xdpath] egress = true``:
  XDP sees only frames a host receives, so a VM's outgoing traffic is seen
  only where it arrives at an xdpath host (a network node's tunnel
  interface, for routed traffic). Otherwise an egress rule is refused with
  `EGRESS_REFUSED`, never accepted and silently left unenforced.

xdpath enforces by address, whatever plugs the VM in, so every VIF type is
compatible: another mechanism driver (OVS, OVN, Linux bridge) binds the
port, and this driver only adds enforcement.
"""

from __future__ import annotations

from typing import Any

from neutron_lib import constants
from neutron_lib import exceptions as lib_exc
from neutron_lib.api.definitions import portbindings
from neutron_lib.db import constants as db_consts
from neutron_lib.services.qos import base
from neutron_lib.services.qos import constants as qos_consts

NAME = "xdpath"

EGRESS_REFUSED = (
    "xdpath cannot enforce egress {rule_type} rules here: XDP sees only the "
    "frames a host receives, and [ml2_xdpath] egress is false (no xdpath host "
    "receives the VMs' outgoing traffic); use direction ingress"
)


def supported_rules() -> dict[str, dict[str, dict[str, Any]]]:
    """The rule types and parameter ranges xdpath enforces (both
    directions: an egress rule is refused by `XdpathQosDriver` with its own
    message, not by the parameter check's generic one)."""
    counter = {"type:range": [0, db_consts.DB_INTEGER_MAX_VALUE]}
    direction = {"type:values": list(constants.VALID_DIRECTIONS)}
    return {
        qos_consts.RULE_TYPE_PACKET_RATE_LIMIT: {
            qos_consts.MAX_KPPS: counter,
            qos_consts.MAX_BURST_KPPS: counter,
            qos_consts.DIRECTION: direction,
        },
        qos_consts.RULE_TYPE_BANDWIDTH_LIMIT: {
            qos_consts.MAX_KBPS: counter,
            qos_consts.MAX_BURST: counter,
            qos_consts.DIRECTION: direction,
        },
    }


class XdpathQosDriver(base.DriverBase):  # type: ignore[misc]
    """Registered by the mechanism driver at its initialisation; Neutron's
    QoS plug-in picks it up when it starts (the AFTER_INIT event)."""

    def __init__(self, egress: bool) -> None:
        super().__init__(
            name=NAME,
            vif_types=[],
            vnic_types=[portbindings.VNIC_NORMAL],
            supported_rules=supported_rules(),
            requires_rpc_notifications=False,
        )
        self.egress = egress

    def is_vif_type_compatible(self, vif_type: str) -> bool:
        return True

    def _check(self, rule: Any) -> bool:
        direction = getattr(rule, "direction", constants.INGRESS_DIRECTION)
        if direction == constants.EGRESS_DIRECTION and not self.egress:
            raise lib_exc.InvalidInput(
                error_message=EGRESS_REFUSED.format(rule_type=rule.rule_type)
            )
        return True

    def validate_rule_for_port(self, context: Any, rule: Any, port: Any) -> bool:
        return self._check(rule)

    def validate_rule_for_network(self, context: Any, rule: Any, network_id: str) -> bool:
        return self._check(rule)
