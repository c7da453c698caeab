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


# The most seconds any [xdpath] duration may be: a day. inf would make the
# agent's wait raise OverflowError (a timestamp too large), and a day is far
# beyond any sensible interval or timeout.
MAX_SECONDS = 86400.0


def _seconds(name: str, default: float, low: float, help: str) -> cfg.Opt:
    """A duration option: a finite number of seconds from ``low`` to
    `MAX_SECONDS`. oslo.config's own bounds let ``nan`` through (every
    comparison with it is false), and a nan interval makes the agent spin."""
    import math

    from oslo_config import cfg, types

    class Seconds(types.Float):
        def __call__(self, value: object) -> float:
            number = super().__call__(value)
            if number is None or not math.isfinite(number):
                raise ValueError(f"{value!r} is not a finite number of seconds")
            return number

    return cfg.Opt(name, type=Seconds(min=low, max=MAX_SECONDS), default=default, help=help)


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
        _seconds(
            "request_timeout",
            5.0,
            0.1,
            "Seconds to wait for one balancer call (connect and answer).",
        ),
        cfg.IntOpt(
            "push_attempts",
            default=2,
            min=1,
            help="Attempts at each balancer before a change is reported ERROR.",
        ),
        _seconds(
            "object_wait",
            15.0,
            0.0,
            "Seconds the driver waits for Octavia to commit an object it was "
            "called about before it works from what the call gave it.",
        ),
        _seconds(
            "status_interval",
            3.0,
            0.5,
            "Seconds between the provider agent's rounds: member health, "
            "operating statuses, listener statistics, reconciliation.",
        ),
        cfg.StrOpt(
            "pending_dir",
            default="/var/lib/octavia/xdpath-pending",
            help="A directory octavia-api and octavia-driver-agent both see, where the "
            "driver records load balancers not in force on every balancer, so that the "
            "agent finishes them even when no balancer holds anything of theirs yet.",
        ),
        _seconds(
            "reconcile_grace",
            6.0,
            0.0,
            "Seconds a balancer must differ from Octavia's state before the agent "
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
