"""The ML2 mechanism driver ``xdpath`` (entry point
``neutron.ml2.mechanism_drivers``).

It binds no port and sends nothing anywhere: Neutron's state is read by
``neutron-xdpath-agent`` on each xdpath host, which makes xdpathd enforce
it. Its part is to register the QoS driver (`qos_driver`), so that Neutron
accepts ``packet_rate_limit`` and ``bandwidth_limit`` policies on ports and
floating IPs, and its one option, ``[ml2_xdpath] egress``.

Only neutron-lib is imported, and oslo.config, which neutron-server has.
"""

from __future__ import annotations

from typing import Any

from neutron_lib.plugins.ml2 import api

from neutron_xdpath.qos_driver import XdpathQosDriver

GROUP = "ml2_xdpath"


def egress_enabled() -> bool:
    """``[ml2_xdpath] egress`` of the running neutron-server, registered
    here on first use."""
    from oslo_config import cfg

    option = cfg.BoolOpt(
        "egress",
        default=False,
        help="Accept egress QoS rules: true only when the xdpath hosts "
        "receive the VMs' outgoing traffic (network nodes' tunnel interfaces).",
    )
    # Registering the same option again is a no-op; a different one of
    # that name would raise, which is right.
    cfg.CONF.register_opt(option, group=GROUP)
    return bool(cfg.CONF[GROUP].egress)


class XdpathMechanismDriver(api.MechanismDriver):  # type: ignore[misc]
    """Registers the QoS driver; binds nothing (another mechanism driver
    plugs the VMs in; xdpath enforces by address)."""

    qos_driver: XdpathQosDriver | None = None

    def initialize(self) -> None:
        driver = XdpathQosDriver(egress=egress_enabled())
        # DriverBase registers itself with the QoS plug-in when that starts
        # (a callback on the QoS plug-in's AFTER_INIT); keep it alive.
        XdpathMechanismDriver.qos_driver = driver

    def bind_port(self, context: Any) -> None:
        """Binds nothing: the port stays for the other drivers."""
