"""The driver's work, done off Octavia's request, one change at a time.

Octavia calls the driver inside its own database transaction and expects it
to return at once. Each call is queued here as a `Change`; one thread per
octavia-api process (octavia-api makes a new driver object for every
request, so the queue, the thread and the `DriverLibrary` belong to the
process) takes them in order and, for each:

1. reads the load balancer from Octavia through the driver agent's get
   socket (``DriverLibrary.get_loadbalancer``), again until it shows what
   the call was about (the call's transaction commits after the driver
   returns), for at most ``[xdpath] object_wait`` seconds, after which the
   call's own object is laid over what was read;
2. leaves out what is being deleted, and makes the owner document of the
   whole load balancer (`octavia_xdpath.mapping.plan`);
3. puts that document on every balancer (`octavia_xdpath.client.Fleet`),
   ``[xdpath] push_attempts`` times at most;
4. reports to Octavia through ``DriverLibrary.update_loadbalancer_status``:
   every object of the load balancer ACTIVE (the deleted ones DELETED), or,
   when a balancer was down or refused, the load balancer and the object the
   call was about ERROR (the reason in octavia-api's log); the provider
   agent brings the balancer back in line later (`octavia_xdpath.agent`).
   When the plan itself is refused nothing is sent, and when every balancer
   that failed refused the document (409, 422) it keeps what it had: then
   nothing is reported DELETED or ACTIVE that the balancers do not hold,
   what the call made, changed or removed is ERROR, and the load balancer
   stays ACTIVE so that the user can remove it (`_refused_statuses`).

Every load balancer's document is complete, so changes are idempotent and
keyed by Octavia's ids: doing one twice, or after a lost one, is harmless.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from octavia_lib.api.drivers import driver_lib

from octavia_xdpath import client, config, mapping, pending, refusals, tree

LOG = logging.getLogger(__name__)

CREATE, UPDATE, DELETE, BATCH, REFRESH = "create", "update", "delete", "batch", "refresh"


@dataclass
class Change:
    """One driver call to carry out."""

    action: str
    kind: str  # octavia-lib's status key of the object: "loadbalancers", "members", ...
    object_id: str
    loadbalancer_id: str | None = None
    pool_id: str | None = None  # for members and health monitors: how to find the LB
    obj: dict[str, Any] | None = None  # the object created or updated (its new fields)
    members: list[dict[str, Any]] = field(default_factory=list)  # member_batch_update
    cascade: bool = False
    done: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_queue: queue.Queue[Change] = queue.Queue()
_thread: threading.Thread | None = None
_library: driver_lib.DriverLibrary | None = None


def library() -> driver_lib.DriverLibrary:
    """The process's DriverLibrary (made on first use: its constructor waits
    for the agent's sockets to exist)."""
    global _library
    with _lock:
        if _library is None:
            sockets = config.agent_sockets()
            _library = driver_lib.DriverLibrary(
                status_socket=sockets.status, stats_socket=sockets.stats, get_socket=sockets.get
            )
        return _library


def submit(change: Change) -> Change:
    """Queues a change for the worker thread (started on first use)."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="xdpath-worker", daemon=True)
            _thread.start()
    _queue.put(change)
    return change


def _run() -> None:
    while True:
        change = _queue.get()
        try:
            process(change)
        except Exception:
            LOG.exception("xdpath: %s %s %s failed", change.action, change.kind, change.object_id)
            try:
                _fail(change)
            except Exception:
                LOG.exception("xdpath: could not report the failure of %s", change.object_id)
        finally:
            change.done.set()


def _fail(change: Change) -> None:
    """After an unexpected failure: nothing left PENDING. The object ERROR
    (DELETED when it was being deleted), its load balancer ERROR, the
    listeners and pools Octavia locked with it ACTIVE."""
    loadbalancer_id = change.loadbalancer_id
    if loadbalancer_id is None and change.pool_id:
        pool = _safe(lambda: _get("pools", str(change.pool_id)))
        loadbalancer_id = str(pool["loadbalancer_id"]) if pool else None
    if loadbalancer_id is None:
        return
    gone = change.action == DELETE
    status: dict[str, list[dict[str, Any]]] = {
        "loadbalancers": [
            {
                "id": loadbalancer_id,
                "provisioning_status": "DELETED"
                if gone and change.kind == "loadbalancers"
                else "ERROR",
            }
        ]
    }
    current = _safe(lambda: _get("loadbalancers", loadbalancer_id))
    if current and not (gone and change.kind == "loadbalancers"):
        ids = mapping.all_ids(current)
        for kind in ("listeners", "pools"):
            status[kind] = [{"id": i, "provisioning_status": "ACTIVE"} for i in ids[kind]]
    if change.kind != "loadbalancers":
        entry = {"id": change.object_id, "provisioning_status": "DELETED" if gone else "ERROR"}
        status[change.kind] = [
            e for e in status.get(change.kind, []) if e["id"] != change.object_id
        ]
        status[change.kind].append(entry)
    push_status(status)


def _safe(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except Exception:
        return None


def _retry(what: str, work: Callable[[], Any], seconds: float = 30.0) -> Any:
    """``work()`` again (with back-off) while it raises, for ``seconds``."""
    deadline = time.monotonic() + seconds
    pause = 0.1
    while True:
        try:
            return work()
        except Exception as error:
            if time.monotonic() > deadline:
                raise
            LOG.debug("xdpath: %s: %s; again", what, error)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _get(kind: str, object_id: str) -> dict[str, Any] | None:
    lib = library()
    getter = {
        "loadbalancers": lib.get_loadbalancer,
        "listeners": lib.get_listener,
        "pools": lib.get_pool,
        "members": lib.get_member,
        "healthmonitors": lib.get_healthmonitor,
    }[kind]
    found = _retry(f"get {kind} {object_id}", lambda: getter(object_id))
    return None if found is None else dict(tree.plain(found))


def _loadbalancer_id(change: Change) -> str | None:
    if change.loadbalancer_id:
        return change.loadbalancer_id
    if change.pool_id:
        deadline = time.monotonic() + config.value("object_wait")
        while True:
            pool = _get("pools", change.pool_id)
            if pool and pool.get("loadbalancer_id"):
                return str(pool["loadbalancer_id"])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
    return None


def _shows(change: Change, current: tree.Tree) -> bool:
    """Whether Octavia's view already has what ``change`` was about."""
    if change.action == CREATE and change.kind == "loadbalancers":
        return True
    if change.action in (CREATE, UPDATE) and change.obj is not None:
        return tree.shows(current, change.kind, change.obj)
    if change.action == BATCH:
        return all(tree.has(current, "members", str(m["member_id"])) for m in change.members)
    return True


def _read(change: Change, loadbalancer_id: str) -> tree.Tree | None:
    """The load balancer as Octavia has it once it shows the change (or as
    the call gave it, laid over what Octavia has, after ``object_wait``)."""
    deadline = time.monotonic() + config.value("object_wait")
    current: tree.Tree | None = None
    while True:
        current = _get("loadbalancers", loadbalancer_id)
        if current is not None and _shows(change, current):
            return current
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if change.kind == "loadbalancers" and change.obj is not None:
        return change.obj if current is None else current
    if current is not None and change.obj is not None and change.action in (CREATE, UPDATE):
        LOG.warning(
            "xdpath: Octavia does not show %s %s %s yet; working from the call's object",
            change.action,
            change.kind,
            change.object_id,
        )
        return tree.overlay(current, change.kind, change.obj)
    return current


def _removed(change: Change, current: tree.Tree) -> set[tuple[str, str]]:
    if change.action == DELETE:
        return {(change.kind, change.object_id)}
    if change.action == BATCH and change.pool_id:
        keep = {str(m["member_id"]) for m in change.members}
        for pool in tree.find(current, "pools", change.pool_id):
            return {
                ("members", str(m["member_id"]))
                for m in pool.get("members") or ()
                if str(m["member_id"]) not in keep
            }
    return set()


def _with_batch(change: Change, current: tree.Tree) -> tree.Tree:
    """The tree with the pool's members exactly the batch's."""
    result = current
    for member in change.members:
        result = tree.overlay(result, "members", {**member, "pool_id": change.pool_id})
    return result


def apply(owner: str, document: dict[str, Any]) -> list[client.BalancerError]:
    """Puts the document on every balancer, again on failure (not where it
    was refused: it would be again); the failures left."""
    fleet = client.Fleet(config.settings())
    attempts = int(config.value("push_attempts"))
    balancers = fleet.balancers
    refused: list[client.BalancerError] = []
    errors: list[client.BalancerError] = []
    for attempt in range(attempts):
        fleet.balancers = balancers
        results = fleet.apply(owner, document)
        refused += [error for error in client.failures(results) if error.refused]
        errors = [error for error in client.failures(results) if not error.refused]
        if not errors:
            break
        failed = {error.endpoint for error in errors}
        balancers = [b for b in balancers if b.endpoint in failed]
        if attempt + 1 < attempts:
            time.sleep(0.5)
    return refused + errors


def _refused_everywhere(errors: list[client.BalancerError]) -> bool:
    """Whether every balancer of the fleet is among `errors`."""
    fleet = client.Fleet(config.settings())
    return {error.endpoint for error in errors} >= {b.endpoint for b in fleet.balancers}


def process(change: Change) -> None:
    """Carries out one change (see the module's documentation)."""
    loadbalancer_id = _loadbalancer_id(change)
    if loadbalancer_id is None:
        LOG.error(
            "xdpath: %s %s %s: its load balancer cannot be found in Octavia",
            change.action,
            change.kind,
            change.object_id,
        )
        return
    owner = mapping.owner_of(loadbalancer_id)
    if change.kind == "loadbalancers" and change.action == DELETE:
        _delete_loadbalancer(change, loadbalancer_id, owner)
        return
    current = _read(change, loadbalancer_id)
    if current is None:
        LOG.error("xdpath: load balancer %s is not in Octavia", loadbalancer_id)
        return
    removed = _removed(change, current)
    if change.action == BATCH:
        current = _with_batch(change, current)
    wanted = tree.without(current, removed)
    try:
        plan = mapping.plan(wanted)
    except (refusals.Unsupported, KeyError, ValueError, TypeError) as error:
        LOG.error(
            "xdpath: %s %s %s of load balancer %s cannot be served: %s",
            change.action,
            change.kind,
            change.object_id,
            loadbalancer_id,
            error,
        )
        push_status(_refused_statuses(change, current, removed))
        return
    if change.kind == "loadbalancers" and change.action == CREATE and mapping.empty(plan.document):
        # A new load balancer without listeners has nothing on any balancer
        # (and no balancer can hold anything of it yet): nothing to send.
        errors = []
    else:
        # Recorded until the statuses reach Octavia: should this process die
        # after the balancers took the change, the agent ends the PENDING_*
        # state Octavia would otherwise keep for ever (`pending`).
        pending.remember(loadbalancer_id)
        errors = apply(owner, plan.document)
    if errors:
        LOG.error(
            "xdpath: load balancer %s (%s %s %s): not in force on every balancer: %s",
            loadbalancer_id,
            change.action,
            change.kind,
            change.object_id,
            client.summary(errors),
        )
    else:
        LOG.info(
            "xdpath: load balancer %s: %s %s %s in force on every balancer",
            loadbalancer_id,
            change.action,
            change.kind,
            change.object_id,
        )
    if errors and all(error.refused for error in errors) and _refused_everywhere(errors):
        # Refused, not missed, by every balancer: they judged the document
        # and kept what they had, and will refuse it again (a table full, a
        # VIP of another owner). As for a refused plan, what the call was
        # about is ERROR and the load balancer stays ACTIVE, so that the
        # user can remove it; an ERROR load balancer takes no change but
        # its delete. Where some balancers took it, the fleet differs: the
        # load balancer is ERROR below, as for any failure.
        push_status(_refused_statuses(change, current, removed))
        return
    push_status(
        _statuses(change, wanted, removed, failed=bool(errors), lb_failed=bool(errors), plan=plan)
    )
    if not errors:
        pending.forget(loadbalancer_id)


def _delete_loadbalancer(change: Change, loadbalancer_id: str, owner: str) -> None:
    fleet = client.Fleet(config.settings())
    errors = client.failures(fleet.delete(owner))
    if errors:
        # Octavia forgets the load balancer all the same; the agent removes
        # what is left on the balancers that missed it when they are back.
        LOG.error(
            "xdpath: load balancer %s deleted, but not from every balancer yet: %s",
            loadbalancer_id,
            client.summary(errors),
        )
    ids: dict[str, list[str]] = {k: [] for k in tree.ID_KEYS}
    for source in (change.obj, _safe_get(loadbalancer_id)):
        if source:
            for kind, found in mapping.all_ids(source).items():
                ids[kind] = mapping.unique(ids[kind] + found)
    status: dict[str, list[dict[str, Any]]] = {
        "loadbalancers": [{"id": loadbalancer_id, "provisioning_status": "DELETED"}]
    }
    if change.cascade:
        for kind, found in ids.items():
            status[kind] = [{"id": i, "provisioning_status": "DELETED"} for i in found]
    push_status(status)


def _safe_get(loadbalancer_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = _safe(lambda: _get("loadbalancers", loadbalancer_id))
    return found


def _statuses(
    change: Change,
    wanted: tree.Tree,
    removed: set[tuple[str, str]],
    *,
    failed: bool,
    lb_failed: bool,
    plan: mapping.Plan | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The status message for a change: every object of the load balancer
    ACTIVE, the deleted ones DELETED; on failure the object the call was
    about ERROR, and the load balancer too when a balancer failed."""
    loadbalancer_id = str(wanted["loadbalancer_id"])
    lb_entry: dict[str, Any] = {
        "id": loadbalancer_id,
        "provisioning_status": "ERROR" if lb_failed else "ACTIVE",
    }
    if change.kind == "loadbalancers" and change.action == CREATE:
        lb_entry["operating_status"] = "ONLINE" if not lb_failed else "ERROR"
    status: dict[str, list[dict[str, Any]]] = {"loadbalancers": [lb_entry]}
    created = change.action == CREATE
    for kind, ids in mapping.all_ids(wanted).items():
        entries = []
        for object_id in ids:
            entry: dict[str, Any] = {"id": object_id, "provisioning_status": "ACTIVE"}
            touched = kind == change.kind and object_id == change.object_id
            if failed and touched:
                entry["provisioning_status"] = "ERROR"
            if (created and (touched or change.kind == "loadbalancers")) or (
                change.action == BATCH and kind == "members"
            ):
                operating = _first_operating(kind, object_id, wanted, plan)
                if operating:
                    entry["operating_status"] = operating
            entries.append(entry)
        status[kind] = entries
    for kind, object_id in removed:
        status.setdefault(kind, []).append({"id": object_id, "provisioning_status": "DELETED"})
    return status


def _refused_statuses(
    change: Change, current: tree.Tree, removed: set[tuple[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    """The status message after the plan refused the load balancer (nothing
    was sent) or the balancers refused its document: they keep what they
    had, so nothing may be reported
    DELETED or ACTIVE that the balancers do not hold. What the call made,
    changed or removed is ERROR (a member being deleted stays in Octavia,
    as it stays on the balancers: deleting it again works once the load
    balancer can be served); the other members and health monitors keep the
    status they had (one refused earlier stays ERROR). The listeners and
    pools Octavia locked go back to ACTIVE, and so does the load balancer
    (ERROR only when it was being created: nothing of it is anywhere), so
    that the user can remove what makes it unservable: Octavia takes
    changes only of an ACTIVE load balancer and pool."""
    loadbalancer_id = str(current["loadbalancer_id"])
    made = change.action == CREATE and change.kind == "loadbalancers"
    lb_entry: dict[str, Any] = {
        "id": loadbalancer_id,
        "provisioning_status": "ERROR" if made else "ACTIVE",
    }
    if made:
        lb_entry["operating_status"] = "ERROR"
    failed: set[tuple[str, str]] = set(removed)
    if made:
        objects = mapping.all_ids(current)
    elif change.action == CREATE and change.obj is not None:
        # What the call made with the object (a pool's members and monitor).
        objects = mapping.all_ids({change.kind: [change.obj]})
    else:
        objects = {}
    failed |= {(kind, object_id) for kind, ids in objects.items() for object_id in ids}
    if change.action == BATCH:
        failed |= {("members", str(m["member_id"])) for m in change.members}
    elif change.kind != "loadbalancers":
        failed.add((change.kind, change.object_id))
    status: dict[str, list[dict[str, Any]]] = {"loadbalancers": [lb_entry]}
    ids = mapping.all_ids(current)
    for kind in ("listeners", "pools"):
        status[kind] = [
            {"id": object_id, "provisioning_status": "ACTIVE"}
            for object_id in ids[kind]
            if (kind, object_id) not in failed
        ]
    for kind, object_id in sorted(failed):
        status.setdefault(kind, []).append({"id": object_id, "provisioning_status": "ERROR"})
    return status


def _first_operating(
    kind: str, object_id: str, wanted: tree.Tree, plan: mapping.Plan | None
) -> str | None:
    """The operating status a new object starts with (the agent follows
    with what the balancers' health checks say)."""
    found = tree.find(wanted, kind, object_id)
    if not found:
        return None
    obj = found[0]
    if obj.get("admin_state_up") is False:
        return "OFFLINE"
    if kind == "members":
        monitored = plan is not None and str(obj.get("pool_id")) in plan.monitored_pools
        return None if monitored else "NO_MONITOR"
    return "ONLINE"


def push_status(status: dict[str, list[dict[str, Any]]]) -> None:
    """Sends a status message to Octavia, again while it fails (30 s)."""
    status = {kind: entries for kind, entries in status.items() if entries}
    _retry("status update", lambda: library().update_loadbalancer_status(status))
