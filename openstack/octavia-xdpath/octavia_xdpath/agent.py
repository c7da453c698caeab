"""The xdpath provider agent, run by octavia-driver-agent.

octavia-driver-agent starts ``run(exit_event)`` in a process of its own
(forked, with Octavia's configuration already parsed) when
``[driver_agent] enabled_provider_agents`` lists ``xdpath``, calls it again if
it raises, and sets ``exit_event`` when it stops.

Every ``[xdpath] status_interval`` seconds, one round:

1. **Which load balancers.** DriverLibrary can read a load balancer by id but
   cannot list them, so the agent takes the ids from the balancers
   themselves: every owner ``octavia-<id>`` on any balancer
   (``GET /v1/owners``), plus those it saw before, until Octavia no longer
   has them, plus those the driver recorded as not in force everywhere
   (`octavia_xdpath.pending`: one created while every balancer was down).
   (A load balancer with no listener has nothing on the balancers and needs
   nothing from the agent.)
2. **Reconciliation.** For each, the document Octavia's state makes
   (``DriverLibrary.get_loadbalancer`` and `octavia_xdpath.mapping.plan`;
   nothing for a load balancer Octavia no longer has) is compared with what
   each balancer has in force (``GET /v1/owners/{owner}``). A balancer that
   still differs after ``[xdpath] reconcile_grace`` seconds (longer than the
   driver's own change takes, so the agent never undoes a change in flight)
   is given the document; then the load balancer and all its objects are
   reported ACTIVE. A balancer that was unreachable and answers again, and
   already agrees, also ends the load balancer's ERROR.
3. **Operating status** from the balancers' health checks: a member is
   ONLINE when every balancer has it in its table, ERROR when every
   balancer's check takes it out, DEGRADED in between, DRAINING at weight
   0, OFFLINE when disabled, NO_MONITOR without a health monitor; a pool
   is ERROR when all its members are, DEGRADED when some are; a listener
   follows its pool; the load balancer is DEGRADED when a listener is not
   ONLINE or a balancer cannot be reached. Sent when it changes (and every
   minute).
4. **Statistics** per listener, summed over its VIPs and the balancers:
   ``bytes_in`` (bytes the balancers forwarded), ``total_connections``
   (new flows), ``active_connections`` (connection-table entries of the
   VIP: an estimate, as the tables are LRU and keep ended flows until
   evicted), ``request_errors`` (frames to the VIP not forwarded: not
   allowed, no backend, over the limit...). ``bytes_out`` is 0: the members
   answer the clients directly (direct server return) and the replies never
   cross a balancer. A balancer that cannot be reached counts with what it
   said last.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from octavia_xdpath import client, config, mapping, pending, refusals, tree, worker

LOG = logging.getLogger(__name__)

FULL_REFRESH = 60.0


class ExitEvent(Protocol):
    """What ``run`` uses of the `multiprocessing.Event` it is given."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class Divergence:
    since: float
    key: str


@dataclass
class AgentState:
    known: set[str] = field(default_factory=set)
    reachable: set[str] = field(default_factory=set)
    verify: set[str] = field(default_factory=set)
    diverged: dict[str, Divergence] = field(default_factory=dict)
    pushed: dict[tuple[str, str], str] = field(default_factory=dict)
    last_full: float = 0.0
    # load balancer -> (endpoint, vip) -> the VIP's row as that balancer last showed it.
    vip_rows: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    first: bool = True
    # load balancer -> why its plan is refused (logged when it changes).
    refused: dict[str, str] = field(default_factory=dict)
    # load balancer -> why its last repair failed (logged when it changes:
    # a balancer that refuses a document refuses it every grace period).
    repair_failed: dict[str, str] = field(default_factory=dict)


def run(exit_event: ExitEvent) -> None:
    LOG.info("xdpath provider agent started")
    state = AgentState()
    while not exit_event.is_set():
        started = time.monotonic()
        try:
            one_round(state)
        except Exception:
            LOG.exception("xdpath agent: round failed")
        interval = config.value("status_interval")
        exit_event.wait(max(0.1, interval - (time.monotonic() - started)))
    LOG.info("xdpath provider agent stopped")


def one_round(state: AgentState, now: float | None = None) -> None:
    """One round (see the module's documentation)."""
    now = time.monotonic() if now is None else now
    settings = config.settings()
    fleet = client.Fleet(settings)
    listing = fleet.owners()
    reachable = {endpoint for endpoint, r in listing.items() if isinstance(r, list)}
    back = reachable - state.reachable if not state.first else reachable
    # A recorded load balancer is checked like one on a balancer that came
    # back: ACTIVE again once every balancer agrees with Octavia.
    recorded = pending.listed()
    state.verify |= pending.listed(older_than=config.value("reconcile_grace"))
    ids = set(state.known) | recorded
    for endpoint, owners in listing.items():
        if isinstance(owners, list):
            found = {mapping.loadbalancer_of(owner) for owner in owners}
            found.discard(None)
            ids |= {str(i) for i in found}
            if endpoint in back:
                state.verify |= {str(i) for i in found}
    state.reachable = reachable
    state.first = False
    full = now - state.last_full >= FULL_REFRESH
    if full:
        state.last_full = now
    statistics: list[dict[str, Any]] = []
    for loadbalancer_id in sorted(ids):
        try:
            stats = _one_loadbalancer(state, fleet, loadbalancer_id, now, full)
        except Exception:
            LOG.exception("xdpath agent: load balancer %s", loadbalancer_id)
            continue
        statistics.extend(stats)
    if statistics:
        try:
            worker.library().update_listener_statistics({"listeners": statistics})
        except Exception as error:
            LOG.warning("xdpath agent: statistics not sent: %s", error)


def _one_loadbalancer(
    state: AgentState, fleet: client.Fleet, loadbalancer_id: str, now: float, full: bool
) -> list[dict[str, Any]]:
    owner = mapping.owner_of(loadbalancer_id)
    found = worker.library().get_loadbalancer(loadbalancer_id)
    current = None if found is None else dict(tree.plain(found))
    if current is None:
        pending.forget(loadbalancer_id)
        state.known.discard(loadbalancer_id)
        state.vip_rows.pop(owner, None)
        state.refused.pop(loadbalancer_id, None)
        plan = mapping.Plan(owner=owner, document={})
    else:
        state.known.add(loadbalancer_id)
        try:
            plan = mapping.plan(current)
        except (refusals.Unsupported, KeyError, ValueError, TypeError) as error:
            # No document to compare or repair with: the balancers keep what
            # they have (a guessed document could take away what is in
            # force), and the worker reported the change that made it so
            # ERROR. Said once per reason, not every round.
            if state.refused.get(loadbalancer_id) != str(error):
                LOG.error(
                    "xdpath agent: load balancer %s cannot be served: %s; the balancers keep "
                    "what they have until it is changed so that it can",
                    loadbalancer_id,
                    error,
                )
            state.refused[loadbalancer_id] = str(error)
            return []
        if state.refused.pop(loadbalancer_id, None) is not None:
            # Servable again: once every balancer agrees with Octavia, the
            # objects left ERROR meanwhile (a delete refused, then the cause
            # removed) are in force and go back to ACTIVE.
            LOG.info("xdpath agent: load balancer %s can be served again", loadbalancer_id)
            state.verify.add(loadbalancer_id)
    views = fleet.view(owner)
    in_force: dict[str, dict[str, Any]] = {}
    for endpoint, view in views.items():
        if isinstance(view, client.BalancerError):
            continue
        in_force[endpoint] = dict(view["document"]) if view else {}
    all_reachable = len(in_force) == len(views)
    _reconcile(
        state=state,
        fleet=fleet,
        loadbalancer_id=loadbalancer_id,
        plan=plan,
        in_force=in_force,
        all_reachable=all_reachable,
        current=current,
        now=now,
    )
    if current is None:
        return []
    good_views = {e: v for e, v in views.items() if isinstance(v, dict)}
    rows = [
        row
        for view in good_views.values()
        for row in view.get("backends") or ()
        if isinstance(row, dict)
    ]
    _operating(state, operating_statuses(current, plan, rows, all_reachable), full)
    return _statistics(state, plan, good_views)


def _reconcile(
    *,
    state: AgentState,
    fleet: client.Fleet,
    loadbalancer_id: str,
    plan: mapping.Plan,
    in_force: dict[str, dict[str, Any]],
    all_reachable: bool,
    current: dict[str, Any] | None,
    now: float,
) -> None:
    """Puts right a balancer that has differed from Octavia for
    ``reconcile_grace`` seconds; ends the ERROR of a load balancer that every
    balancer agrees on again."""
    owner = plan.owner
    differing = sorted(
        endpoint
        for endpoint, document in in_force.items()
        if not mapping.same(plan.document, document)
    )
    if differing:
        # The same difference (what Octavia wants, what each differing
        # balancer has) for reconcile_grace seconds before a repair.
        key = json.dumps(
            [
                mapping.canonical(plan.document),
                [(e, mapping.canonical(in_force[e])) for e in differing],
            ],
            sort_keys=True,
            default=str,
        )
        seen = state.diverged.get(loadbalancer_id)
        if seen is None or seen.key != key:
            state.diverged[loadbalancer_id] = Divergence(now, key)
        elif now - seen.since >= config.value("reconcile_grace"):
            _repair(
                state=state,
                fleet=fleet,
                loadbalancer_id=loadbalancer_id,
                owner=owner,
                plan=plan,
                differing=differing,
                current=current,
            )
    else:
        state.diverged.pop(loadbalancer_id, None)
        # Only a verified record is forgotten: a younger one belongs to a
        # change in flight, and protects it should its worker die.
        if loadbalancer_id in state.verify and all_reachable:
            pending.forget(loadbalancer_id)
            state.verify.discard(loadbalancer_id)
            if current is not None:
                LOG.info(
                    "xdpath agent: load balancer %s is in force on every balancer",
                    loadbalancer_id,
                )
                worker.push_status(_all_active(current))


def _repair(
    *,
    state: AgentState,
    fleet: client.Fleet,
    loadbalancer_id: str,
    owner: str,
    plan: mapping.Plan,
    differing: list[str],
    current: dict[str, Any] | None,
) -> None:
    balancers = fleet.balancers
    fleet.balancers = [b for b in balancers if b.endpoint in differing]
    results = fleet.apply(owner, plan.document)
    fleet.balancers = balancers
    errors = client.failures(results)
    if errors:
        why = client.summary(errors)
        if state.repair_failed.get(loadbalancer_id) != why:
            LOG.error(
                "xdpath agent: load balancer %s: could not put balancers right: %s",
                loadbalancer_id,
                why,
            )
        state.repair_failed[loadbalancer_id] = why
        return
    state.repair_failed.pop(loadbalancer_id, None)
    LOG.warning(
        "xdpath agent: load balancer %s: put %s back in line with Octavia",
        loadbalancer_id,
        ", ".join(differing),
    )
    state.diverged.pop(loadbalancer_id, None)
    if current is not None:
        state.verify.discard(loadbalancer_id)
        worker.push_status(_all_active(current))


def _all_active(current: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    status: dict[str, list[dict[str, Any]]] = {
        "loadbalancers": [{"id": str(current["loadbalancer_id"]), "provisioning_status": "ACTIVE"}]
    }
    for kind, ids in mapping.all_ids(current).items():
        status[kind] = [{"id": i, "provisioning_status": "ACTIVE"} for i in ids]
    return status


def member_status(member: dict[str, Any], monitored: bool, rows: list[dict[str, Any]]) -> str:
    """A member's operating status from its rows on the balancers (one per
    VIP of its pool on each balancer)."""
    if member.get("admin_state_up") is False:
        return "OFFLINE"
    if not monitored:
        return "DRAINING" if member.get("weight") == 0 else "NO_MONITOR"
    healthy = [row.get("healthy") for row in rows if row.get("healthy") is not None]
    if not healthy:
        return "NO_MONITOR" if not rows else "ONLINE"
    if all(healthy):
        return "DRAINING" if member.get("weight") == 0 else "ONLINE"
    if not any(healthy):
        return "ERROR"
    return "DEGRADED"


def pool_status(pool: Mapping[str, Any], members: list[str]) -> str:
    if pool.get("admin_state_up") is False:
        return "OFFLINE"
    counted = [s for s in members if s != "OFFLINE"]
    if counted and all(s == "ERROR" for s in counted):
        return "ERROR"
    if any(s in ("ERROR", "DEGRADED") for s in counted):
        return "DEGRADED"
    return "ONLINE"


def operating_statuses(
    current: Mapping[str, Any],
    plan: mapping.Plan,
    rows: list[dict[str, Any]],
    all_reachable: bool,
) -> dict[str, list[dict[str, Any]]]:
    """Every object's operating status from the balancers' backend rows."""
    status: dict[str, list[dict[str, Any]]] = {
        "loadbalancers": [],
        "listeners": [],
        "pools": [],
        "members": [],
    }
    pool_statuses: dict[str, str] = {}
    for pool_id, pool in refusals.pools_of(current).items():
        vips = set(plan.vips_of_pool(pool_id))
        monitored = pool_id in plan.monitored_pools and bool(vips)
        member_statuses = []
        for member in pool.get("members") or ():
            address = _address(member.get("address"))
            mine = [
                r for r in rows if r.get("vip") in vips and _address(r.get("backend")) == address
            ]
            value = member_status(member, monitored, mine)
            member_statuses.append(value)
            status["members"].append({"id": str(member["member_id"]), "operating_status": value})
        pool_statuses[pool_id] = pool_status(pool, member_statuses)
        status["pools"].append({"id": pool_id, "operating_status": pool_statuses[pool_id]})
    listener_statuses = []
    for listener in current.get("listeners") or ():
        value = "OFFLINE"
        if listener.get("admin_state_up") is not False:
            value = pool_statuses.get(str(listener.get("default_pool_id")), "ONLINE")
            value = "ONLINE" if value == "OFFLINE" else value
        listener_statuses.append(value)
        status["listeners"].append({"id": str(listener["listener_id"]), "operating_status": value})
    status["loadbalancers"].append(
        {
            "id": str(current["loadbalancer_id"]),
            "operating_status": _loadbalancer_status(current, listener_statuses, all_reachable),
        }
    )
    return status


def _loadbalancer_status(
    current: Mapping[str, Any], listeners: list[str], all_reachable: bool
) -> str:
    if current.get("admin_state_up") is False:
        return "OFFLINE"
    if listeners and all(s == "ERROR" for s in listeners):
        return "ERROR"
    if not all_reachable or any(s in ("ERROR", "DEGRADED") for s in listeners):
        return "DEGRADED"
    return "ONLINE"


def _operating(
    state: AgentState,
    status: dict[str, list[dict[str, Any]]],
    full: bool,
) -> None:
    """Sends the operating statuses that changed since last sent (all of
    them on a full round)."""
    changed: dict[str, list[dict[str, Any]]] = {}
    for kind, entries in status.items():
        for entry in entries:
            if full or state.pushed.get((kind, entry["id"])) != entry["operating_status"]:
                changed.setdefault(kind, []).append(entry)
    if not changed:
        return
    try:
        worker.library().update_loadbalancer_status(changed)
    except Exception as error:
        LOG.warning("xdpath agent: operating status not sent: %s", error)
        return
    for kind, entries in changed.items():
        for entry in entries:
            state.pushed[(kind, entry["id"])] = entry["operating_status"]


def _address(text: Any) -> str | None:
    try:
        return ipaddress.ip_address(str(text)).compressed
    except ValueError:
        return None


def _statistics(
    state: AgentState, plan: mapping.Plan, views: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    wanted = {use.vip for use in plan.vips}
    last = state.vip_rows.setdefault(plan.owner, {})
    for endpoint, view in views.items():
        for row in view.get("vips") or ():
            if isinstance(row, dict) and row.get("vip") in wanted:
                last[(endpoint, str(row["vip"]))] = row
    for key in [key for key in last if key[1] not in wanted]:
        del last[key]
    result = []
    listeners: dict[str, list[str]] = {}
    for use in plan.vips:
        listeners.setdefault(use.listener_id, []).append(use.vip)
    for listener_id, vips in listeners.items():
        total = {"bytes_in": 0, "total_connections": 0, "active_connections": 0, "errors": 0}
        for (_, vip), row in last.items():
            if vip not in vips:
                continue
            counters = row.get("counters") or {}
            total["bytes_in"] += int(counters.get("bytes") or 0)
            total["total_connections"] += int(counters.get("new_flows") or 0)
            total["active_connections"] += int(row.get("active_connections") or 0)
            total["errors"] += sum(int(v or 0) for v in (row.get("drops") or {}).values())
        result.append(
            {
                "id": listener_id,
                "bytes_in": total["bytes_in"],
                "bytes_out": 0,
                "active_connections": total["active_connections"],
                "total_connections": total["total_connections"],
                "request_errors": total["errors"],
            }
        )
    return result
