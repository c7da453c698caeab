"""The xdpath provider driver, loaded into octavia-api.

Each call checks what it is given against what xdpath can do (a refusal is
octavia-lib's ``UnsupportedOptionError``: Octavia answers the user with HTTP
400 and the message, and nothing changes), then queues the work and returns
(`octavia_xdpath.worker`): Octavia calls the driver inside its own database
transaction, so the balancers are programmed and the statuses reported
from the worker thread once the transaction has committed.

octavia-api makes one of these objects for every request: ``__init__`` is
cheap and the state is the worker module's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from octavia_lib.api.drivers import exceptions, provider_base

from octavia_xdpath import refusals, tree, worker
from octavia_xdpath.worker import BATCH, CREATE, DELETE, REFRESH, UPDATE, Change

LOG = logging.getLogger(__name__)


def _refuse(check: Callable[[], None]) -> None:
    """Runs a ``mapping.check_*``; its refusal as Octavia's error."""
    try:
        check()
    except refusals.Unsupported as error:
        message = f"xdpath: {error}"
        raise exceptions.UnsupportedOptionError(
            user_fault_string=message, operator_fault_string=message
        ) from None


def _lookup(kind: str, object_id: Any) -> dict[str, Any] | None:
    """An object as Octavia has it now, for a check that needs its parent
    (None when it cannot be read now: the worker checks again)."""
    if not object_id:
        return None
    lib = worker.library()
    getter = {"pools": lib.get_pool, "listeners": lib.get_listener}[kind]
    try:
        found = getter(str(object_id))
    except Exception as error:
        LOG.warning("xdpath: reading %s %s for a check: %s", kind, object_id, error)
        return None
    return None if found is None else dict(tree.plain(found))


def _listener_port_of_pool(pool: dict[str, Any] | None) -> int | None:
    if not pool or not pool.get("listener_id"):
        return None
    listener = _lookup("listeners", pool["listener_id"])
    port = listener.get("protocol_port") if listener else None
    return int(port) if port is not None else None


def _check_members(members: Iterable[dict[str, Any]], port: int | None) -> None:
    def check() -> None:
        listed = list(members)
        for member in listed:
            refusals.check_member(member, port)
        refusals.check_members_unique(listed)

    _refuse(check)


# Each kind's id key, and the key of the parent by which the worker finds
# the object's load balancer (a member's and a health monitor's is its pool).
_KEYS: dict[str, tuple[str, str]] = {
    "listeners": ("listener_id", "loadbalancer_id"),
    "pools": ("pool_id", "loadbalancer_id"),
    "members": ("member_id", "pool_id"),
    "healthmonitors": ("healthmonitor_id", "pool_id"),
}


def _submit(
    action: str,
    kind: str,
    obj: dict[str, Any],
    fields: dict[str, Any] | None = None,
    loadbalancer_id: str | None = None,
) -> None:
    """Queues ``action`` on ``obj`` (its ids and parent as Octavia holds
    them); ``fields`` are the object's new fields, given the object's id."""
    id_key, parent_key = _KEYS[kind]
    if fields is not None:
        fields[id_key] = obj[id_key]
    parent = str(obj[parent_key])
    if parent_key == "loadbalancer_id":
        loadbalancer_id = parent
    pool_id = parent if parent_key == "pool_id" else None
    change = Change(action, kind, str(obj[id_key]), loadbalancer_id, pool_id, obj=fields)
    worker.submit(change)


class XdpathProviderDriver(provider_base.ProviderDriver):  # type: ignore[misc]
    """Octavia load balancers on a fleet of xdpath balancers (see the package
    README)."""

    def __init__(self) -> None:
        super().__init__()

    # Load balancers ------------------------------------------------------

    def loadbalancer_create(self, loadbalancer: Any) -> None:
        obj = tree.plain(loadbalancer)
        _refuse(lambda: refusals.check_loadbalancer(obj))
        lb_id = str(obj["loadbalancer_id"])
        LOG.info("xdpath: load balancer %s create queued", lb_id)
        worker.submit(Change(CREATE, "loadbalancers", lb_id, loadbalancer_id=lb_id, obj=obj))

    def loadbalancer_update(self, old_loadbalancer: Any, new_loadbalancer: Any) -> None:
        new = tree.plain(new_loadbalancer)
        lb_id = str(new.get("loadbalancer_id") or tree.plain(old_loadbalancer)["loadbalancer_id"])
        new["loadbalancer_id"] = lb_id
        worker.submit(Change(UPDATE, "loadbalancers", lb_id, loadbalancer_id=lb_id, obj=new))

    def loadbalancer_delete(self, loadbalancer: Any, cascade: bool = False) -> None:
        obj = tree.plain(loadbalancer)
        lb_id = str(obj["loadbalancer_id"])
        LOG.info("xdpath: load balancer %s delete queued (cascade %s)", lb_id, cascade)
        worker.submit(
            Change(DELETE, "loadbalancers", lb_id, loadbalancer_id=lb_id, obj=obj, cascade=cascade)
        )

    def loadbalancer_failover(self, loadbalancer_id: str) -> None:
        # No amphora to replace: put the load balancer on every balancer again.
        worker.submit(
            Change(REFRESH, "loadbalancers", loadbalancer_id, loadbalancer_id=loadbalancer_id)
        )

    # Listeners -------------------------------------------------------------

    def listener_create(self, listener: Any) -> None:
        obj = tree.plain(listener)
        _refuse(lambda: refusals.check_listener(obj))
        pool = obj.get("default_pool") or _lookup("pools", obj.get("default_pool_id"))
        if pool:
            _refuse(lambda: refusals.check_pool(pool))
            _check_members(pool.get("members") or (), obj.get("protocol_port"))
        _submit(CREATE, "listeners", obj, fields=obj)

    def listener_update(self, old_listener: Any, new_listener: Any) -> None:
        old, new = tree.plain(old_listener), tree.plain(new_listener)
        _refuse(lambda: refusals.check_listener(new))
        if new.get("default_pool_id"):
            pool = _lookup("pools", new["default_pool_id"])
            if pool:
                _check_members(pool.get("members") or (), old.get("protocol_port"))
        _submit(UPDATE, "listeners", old, fields=new)

    def listener_delete(self, listener: Any) -> None:
        _submit(DELETE, "listeners", tree.plain(listener))

    # Pools -----------------------------------------------------------------

    def pool_create(self, pool: Any) -> None:
        obj = tree.plain(pool)
        _refuse(lambda: refusals.check_pool(obj))
        _refuse(lambda: refusals.check_members_unique(obj.get("members") or ()))
        if obj.get("listener_id"):
            listener = _lookup("listeners", obj["listener_id"])
            if listener:
                _check_members(obj.get("members") or (), listener.get("protocol_port"))
        _submit(CREATE, "pools", obj, fields=obj)

    def pool_update(self, old_pool: Any, new_pool: Any) -> None:
        old, new = tree.plain(old_pool), tree.plain(new_pool)
        _refuse(lambda: refusals.check_pool(new))
        _submit(UPDATE, "pools", old, fields=new)

    def pool_delete(self, pool: Any) -> None:
        _submit(DELETE, "pools", tree.plain(pool))

    # Members ---------------------------------------------------------------

    def member_create(self, member: Any) -> None:
        obj = tree.plain(member)
        pool = _lookup("pools", obj.get("pool_id"))
        _refuse(lambda: refusals.check_member(obj, _listener_port_of_pool(pool)))
        # Here, not only in the worker's plan: a duplicate accepted by Octavia
        # makes every later change of the load balancer unservable.
        others = [
            m
            for m in (pool or {}).get("members") or ()
            if m.get("member_id") != obj.get("member_id")
        ]
        _refuse(lambda: refusals.check_members_unique([*others, obj]))
        lb_id = str(pool["loadbalancer_id"]) if pool else None
        _submit(CREATE, "members", obj, fields=obj, loadbalancer_id=lb_id)

    def member_update(self, old_member: Any, new_member: Any) -> None:
        old, new = tree.plain(old_member), tree.plain(new_member)
        _refuse(lambda: refusals.check_member(new))
        _submit(UPDATE, "members", old, fields=new)

    def member_delete(self, member: Any) -> None:
        _submit(DELETE, "members", tree.plain(member))

    def member_batch_update(self, pool_id: str, members: list[Any]) -> None:
        objs = [tree.plain(member) for member in members]
        pool = _lookup("pools", pool_id)
        _check_members(objs, _listener_port_of_pool(pool))
        worker.submit(
            Change(
                BATCH,
                "pools",
                str(pool_id),
                loadbalancer_id=str(pool["loadbalancer_id"]) if pool else None,
                pool_id=str(pool_id),
                members=objs,
            )
        )

    # Health monitors -------------------------------------------------------

    def health_monitor_create(self, healthmonitor: Any) -> None:
        obj = tree.plain(healthmonitor)
        _refuse(lambda: refusals.check_healthmonitor(obj))
        _submit(CREATE, "healthmonitors", obj, fields=obj)

    def health_monitor_update(self, old_healthmonitor: Any, new_healthmonitor: Any) -> None:
        old, new = tree.plain(old_healthmonitor), tree.plain(new_healthmonitor)
        merged = {**old, **new}
        _refuse(lambda: refusals.check_healthmonitor(merged))
        _submit(UPDATE, "healthmonitors", old, fields=new)

    def health_monitor_delete(self, healthmonitor: Any) -> None:
        _submit(DELETE, "healthmonitors", tree.plain(healthmonitor))

    # L7 --------------------------------------------------------------------

    def _no_l7(self) -> None:
        _refuse(lambda: refusals.check_listener({"l7policies": [True]}))

    def l7policy_create(self, l7policy: Any) -> None:
        self._no_l7()

    def l7policy_update(self, old_l7policy: Any, new_l7policy: Any) -> None:
        self._no_l7()

    def l7policy_delete(self, l7policy: Any) -> None:
        self._no_l7()

    def l7rule_create(self, l7rule: Any) -> None:
        self._no_l7()

    def l7rule_update(self, old_l7rule: Any, new_l7rule: Any) -> None:
        self._no_l7()

    def l7rule_delete(self, l7rule: Any) -> None:
        self._no_l7()

    # Flavors and availability zones ----------------------------------------

    def get_supported_flavor_metadata(self) -> dict[str, str]:
        return dict(refusals.FLAVOR_METADATA)

    def validate_flavor(self, flavor_metadata: dict[str, Any]) -> None:
        _refuse(lambda: refusals.check_flavor(flavor_metadata))

    def get_supported_availability_zone_metadata(self) -> dict[str, str]:
        return dict(refusals.AZ_METADATA)

    def validate_availability_zone(self, availability_zone_metadata: dict[str, Any]) -> None:
        _refuse(lambda: refusals.check_availability_zone(availability_zone_metadata))
