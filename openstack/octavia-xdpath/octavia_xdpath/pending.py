"""Load balancers that a change could not put on every balancer.

The provider agent learns which load balancers exist from the balancers
themselves (DriverLibrary cannot list them), so one whose every change failed
on every balancer (all were down when it was created) would be unknown to it
until its next change. The driver's worker therefore leaves its id, as an
empty file named by it, in ``[xdpath] pending_dir``; the agent reads the
directory every round and removes an id once every balancer agrees with
Octavia about it. octavia-api and octavia-driver-agent must share the
directory (they run on the same controller host as a rule); an id that never
reaches the agent is put right by the next change of its load balancer, as
before.

The worker also records every load balancer while a change is sent, and
forgets it once the change's statuses reached Octavia: if octavia-api dies
in between (the balancers have the change, Octavia still shows it PENDING_*,
which only the driver can end), the record outlives it and the agent, once
every balancer agrees with Octavia, reports the load balancer ACTIVE. The
agent leaves records younger than ``reconcile_grace`` alone: their worker
is still at them.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from octavia_xdpath import config

LOG = logging.getLogger(__name__)

# Octavia's ids are UUIDs: nothing else may name a file here.
_ID = re.compile(r"[0-9a-fA-F-]{1,64}")


def _path(loadbalancer_id: str) -> Path | None:
    if not _ID.fullmatch(loadbalancer_id):
        LOG.warning("xdpath: %r is not a load balancer id; not recorded", loadbalancer_id)
        return None
    return Path(config.pending_dir()) / loadbalancer_id


def remember(loadbalancer_id: str) -> None:
    """Records that the load balancer is not in force on every balancer."""
    path = _path(loadbalancer_id)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as error:
        LOG.warning("xdpath: recording load balancer %s as pending: %s", loadbalancer_id, error)


def forget(loadbalancer_id: str) -> None:
    """The load balancer is in force everywhere (or gone)."""
    path = _path(loadbalancer_id)
    if path is None:
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        LOG.warning("xdpath: %s: %s", path, error)


def listed(older_than: float = 0.0) -> set[str]:
    """The ids recorded at least ``older_than`` seconds ago (a younger one
    may be a change still in flight, whose worker reports it itself)."""
    now = time.time()
    try:
        entries = [
            entry for entry in Path(config.pending_dir()).iterdir() if _ID.fullmatch(entry.name)
        ]
    except FileNotFoundError:
        return set()
    except OSError as error:
        LOG.warning("xdpath: reading %s: %s", config.pending_dir(), error)
        return set()
    found = set()
    for entry in entries:
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue  # forgotten meanwhile
        except OSError as error:
            LOG.warning("xdpath: %s: %s", entry, error)
            continue
        if age >= older_than:
            found.add(entry.name)
    return found
