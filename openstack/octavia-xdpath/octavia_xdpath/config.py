"""What the driver reads from Octavia's configuration.

The driver runs inside octavia-api and octavia-driver-agent, whose oslo.config
``CONF`` holds Octavia's options (``[driver_agent]`` among them). oslo.config
comes with Octavia, so this package does not depend on it: it is imported
here, when a value is first needed, never when the package is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oslo_config import cfg

GROUP = "xdpath"


@dataclass(frozen=True)
class AgentSockets:
    """The driver agent's Unix sockets (Octavia's ``[driver_agent]``)."""

    status: str
    stats: str
    get: str


def _conf() -> cfg.ConfigOpts:
    from oslo_config import cfg

    conf = cfg.CONF
    if GROUP not in conf:
        conf.register_opts(
            [
                cfg.ListOpt(
                    "balancer_endpoints",
                    default=[],
                    help="The xdpath balancers' API endpoints (placeholder: not used yet).",
                ),
            ],
            group=GROUP,
        )
    return conf


def agent_sockets() -> AgentSockets:
    """The sockets octavia-driver-agent listens on, as this process's Octavia
    configuration names them."""
    group = _conf().driver_agent
    return AgentSockets(
        status=str(group.status_socket_path),
        stats=str(group.stats_socket_path),
        get=str(group.get_socket_path),
    )


def balancer_endpoints() -> list[str]:
    """``[xdpath] balancer_endpoints``."""
    return [str(endpoint) for endpoint in _conf().xdpath.balancer_endpoints]
