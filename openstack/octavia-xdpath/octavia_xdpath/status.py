"""Status updates to Octavia, pushed from a background thread.

Octavia's API calls the driver and expects it to return at once; the driver
reports how the work ended later, through octavia-lib's `DriverLibrary`, which
sends it over the driver agent's status socket (a Unix socket whose path is
Octavia's ``[driver_agent] status_socket_path``). The agent writes it to
Octavia's database.

octavia-api makes a new driver object for every request, so the thread and
the `DriverLibrary` belong to the process, not to a driver object.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from octavia_lib.api.drivers import driver_lib

from octavia_xdpath import config

LOG = logging.getLogger(__name__)

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_library: driver_lib.DriverLibrary | None = None


def _get_library() -> driver_lib.DriverLibrary:
    # Made on first use, in the background thread: DriverLibrary() waits (up
    # to minutes) for the agent's sockets to exist, which must not hold up an
    # API request or the API's start.
    global _library
    if _library is None:
        sockets = config.agent_sockets()
        _library = driver_lib.DriverLibrary(
            status_socket=sockets.status,
            stats_socket=sockets.stats,
            get_socket=sockets.get,
        )
    return _library


def _submit(work: Callable[[], None]) -> Future[None]:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xdpath-status")
        return _executor.submit(work)


def update_loadbalancer_status(status: dict[str, Any]) -> Future[None]:
    """Send ``status`` (octavia-lib's status dictionary: ``{"loadbalancers":
    [{"id": ..., "provisioning_status": ...}], "listeners": [...], ...}``) to
    Octavia from the background thread; errors are logged."""

    def push() -> None:
        try:
            _get_library().update_loadbalancer_status(status)
        except Exception:
            LOG.exception("xdpath: status update %s failed", status)
            raise

    return _submit(push)
