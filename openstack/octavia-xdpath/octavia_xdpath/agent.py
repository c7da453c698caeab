"""The xdpath provider agent, run by octavia-driver-agent.

octavia-driver-agent starts ``run(exit_event)`` in a process of its own
(forked, with Octavia's configuration already parsed) when
``[driver_agent] enabled_provider_agents`` lists ``xdpath``, calls it again if
it raises, and sets ``exit_event`` when it stops (then waits
``provider_agent_shutdown_timeout`` seconds before killing the process).

A skeleton: it only waits. This is where status and statistics that the
balancers report by themselves (health, traffic counters) will be sent to
Octavia, through `octavia_lib.api.drivers.driver_lib.DriverLibrary`.
"""

from __future__ import annotations

import logging
from typing import Protocol

LOG = logging.getLogger(__name__)


class ExitEvent(Protocol):
    """What ``run`` uses of the `multiprocessing.Event` it is given."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def run(exit_event: ExitEvent) -> None:
    LOG.info("xdpath provider agent started")
    exit_event.wait()
    LOG.info("xdpath provider agent stopped")
