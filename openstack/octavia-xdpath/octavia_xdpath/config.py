"""What the driver reads from Octavia's configuration.

The driver runs inside octavia-api and octavia-driver-agent, whose oslo.config
``CONF`` holds Octavia's options (``[driver_agent]`` among them). oslo.config
comes with Octavia, so this package does not depend on it: it is imported
here, when a value is first needed, never when the package is imported. The
driver's own options (``[xdpath]``) are registered there on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from octavia_xdpath import client

if TYPE_CHECKING:
    from oslo_config import cfg

GROUP = "xdpath"
_lock = threading.Lock()


@dataclass(frozen=True)
class AgentSockets:
    """The driver agent's Unix sockets (Octavia's ``[driver_agent]``)."""

    status: str
    stats: str
    get: str


def options() -> list[cfg.Opt]:
    """The ``[xdpath]`` options (also for oslo-config-generator)."""
    from oslo_config import cfg

    return [
        cfg.ListOpt(
            "balancer_endpoints",
            default=[],
            help="The xdpath balancers' API endpoints, http(s)://host:port (xdpathd "
            "--listen). Every balancer is given every load balancer of this driver.",
        ),
        cfg.StrOpt(
            "token_file",
            help="A file holding the bearer token of the balancers' xdpathd (their "
            "--token-file). Required for TCP endpoints.",
        ),
        cfg.StrOpt("ca_file", help="CA bundle to check https endpoints with."),
        cfg.BoolOpt("insecure", default=False, help="Do not check https certificates."),
        cfg.FloatOpt(
            "request_timeout",
            default=5.0,
            min=0.1,
            help="Seconds to wait for one balancer call (connect and answer).",
        ),
        cfg.IntOpt(
            "push_attempts",
            default=2,
            min=1,
            help="Attempts at each balancer before a change is reported ERROR.",
        ),
        cfg.FloatOpt(
            "object_wait",
            default=15.0,
            min=0.0,
            help="Seconds the driver waits for Octavia to commit an object it was "
            "called about before it works from what the call gave it.",
        ),
        cfg.FloatOpt(
            "status_interval",
            default=3.0,
            min=0.5,
            help="Seconds between the provider agent's rounds: member health, "
            "operating statuses, listener statistics, reconciliation.",
        ),
        cfg.StrOpt(
            "pending_dir",
            default="/var/lib/octavia/xdpath-pending",
            help="A directory octavia-api and octavia-driver-agent both see, where the "
            "driver records load balancers not in force on every balancer, so that the "
            "agent finishes them even when no balancer holds anything of theirs yet.",
        ),
        cfg.FloatOpt(
            "reconcile_grace",
            default=6.0,
            min=0.0,
            help="Seconds a balancer must differ from Octavia's state before the agent "
            "puts it right (longer than a change takes, so that the agent never races "
            "the driver).",
        ),
    ]


def _conf() -> cfg.ConfigOpts:
    from oslo_config import cfg

    conf = cfg.CONF
    with _lock:
        if GROUP not in conf:
            conf.register_opts(options(), group=GROUP)
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


def settings() -> client.Settings:
    """How to reach the balancers (the token file is read at every call, so
    a new token needs no restart)."""
    group = _conf().xdpath
    token = None
    if group.token_file:
        token = Path(group.token_file).read_text().strip()
    return client.Settings(
        endpoints=tuple(str(endpoint) for endpoint in group.balancer_endpoints),
        token=token,
        timeout=float(group.request_timeout),
        ca_file=group.ca_file,
        insecure=bool(group.insecure),
    )


def pending_dir() -> str:
    """``[xdpath] pending_dir``."""
    return str(_conf().xdpath.pending_dir)


def value(name: str) -> float:
    """A numeric ``[xdpath]`` option."""
    return float(getattr(_conf().xdpath, name))
