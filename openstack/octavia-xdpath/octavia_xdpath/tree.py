"""Octavia's objects as plain dictionaries, and edits of a load balancer tree.

octavia-lib hands the driver provider data models (attributes left out are
``Unset``) and DriverLibrary's ``get_*`` returns them with nested dictionaries
in places; `plain` turns either into dictionaries without the unset keys.
A *tree* is a load balancer as ``get_loadbalancer`` gives it: ``listeners``
(each with its ``default_pool``), ``pools`` (each with ``members`` and
``healthmonitor``), ``additional_vips``, ``flavor``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from octavia_xdpath import mapping

Tree = dict[str, Any]


def plain(value: Any) -> Any:
    """Data models, dictionaries and lists, recursively, as dictionaries and
    lists; unset attributes left out."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return plain(value.to_dict(recurse=True))
    if isinstance(value, dict):
        return {
            key: plain(item) for key, item in value.items() if type(item).__name__ != "UnsetType"
        }
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


ID_KEYS = {
    "listeners": "listener_id",
    "pools": "pool_id",
    "members": "member_id",
    "healthmonitors": "healthmonitor_id",
}


def _scalar(key: str, value: Any) -> bool:
    """A field compared and laid over as it is (not a nested object or list)."""
    return key == "allowed_cidrs" or not isinstance(value, dict | list)


def _key(kind: str) -> str:
    return "loadbalancer_id" if kind == "loadbalancers" else ID_KEYS[kind]


def pools(tree: Tree) -> Iterator[dict[str, Any]]:
    """Every pool dictionary of the tree, including listeners' default pools
    (one pool may appear twice: both copies are edited alike)."""
    for listener in tree.get("listeners") or ():
        if listener.get("default_pool"):
            yield listener["default_pool"]
    yield from tree.get("pools") or ()


def find(tree: Tree, kind: str, object_id: str) -> list[dict[str, Any]]:
    """Every copy of the object of ``kind`` (a status key) with this id."""
    if kind == "loadbalancers":
        return [tree] if str(tree.get("loadbalancer_id")) == object_id else []
    key = ID_KEYS[kind]
    found: list[dict[str, Any]] = []
    if kind == "listeners":
        found = [x for x in tree.get("listeners") or () if str(x.get(key)) == object_id]
    elif kind == "pools":
        found = [x for x in pools(tree) if str(x.get(key)) == object_id]
    elif kind == "members":
        for pool in pools(tree):
            found += [x for x in pool.get("members") or () if str(x.get(key)) == object_id]
    elif kind == "healthmonitors":
        for pool in pools(tree):
            monitor = pool.get("healthmonitor")
            if monitor and str(monitor.get(key)) == object_id:
                found.append(monitor)
    return found


def has(tree: Tree, kind: str, object_id: str) -> bool:
    return bool(find(tree, kind, object_id))


def without(tree: Tree, removed: set[tuple[str, str]]) -> Tree:
    """A copy of the tree without the objects (kind, id) being deleted (and
    what hangs from them)."""
    result = copy.deepcopy(tree)
    gone = {object_id for _, object_id in removed}
    result["listeners"] = [
        x for x in result.get("listeners") or () if str(x.get("listener_id")) not in gone
    ]
    result["pools"] = [x for x in result.get("pools") or () if str(x.get("pool_id")) not in gone]
    for listener in result["listeners"]:
        pool = listener.get("default_pool")
        if str(listener.get("default_pool_id")) in gone or (
            pool and str(pool.get("pool_id")) in gone
        ):
            listener["default_pool_id"] = None
            listener["default_pool"] = None
    for pool in pools(result):
        pool["members"] = [
            x for x in pool.get("members") or () if str(x.get("member_id")) not in gone
        ]
        monitor = pool.get("healthmonitor")
        if monitor and str(monitor.get("healthmonitor_id")) in gone:
            pool["healthmonitor"] = None
    return result


def overlay(tree: Tree, kind: str, obj: dict[str, Any]) -> Tree:
    """A copy of the tree with ``obj`` (created or updated) in it: its set
    fields over the copies the tree has, or added where it belongs."""
    result = copy.deepcopy(tree)
    object_id = str(obj[_key(kind)])
    fields = {
        k: v for k, v in obj.items() if not isinstance(v, dict | list) or k == "allowed_cidrs"
    }
    if kind == "healthmonitors":
        fields = dict(obj)
    copies = find(result, kind, object_id)
    for existing in copies:
        existing.update(fields)
    if copies:
        return result
    if kind == "listeners":
        result.setdefault("listeners", []).append(copy.deepcopy(obj))
    elif kind == "pools":
        result.setdefault("pools", []).append(copy.deepcopy(obj))
        for listener in result.get("listeners") or ():
            if str(listener.get("listener_id")) == str(obj.get("listener_id")):
                listener["default_pool_id"] = object_id
                listener["default_pool"] = None
    else:
        for pool in pools(result):
            if str(pool.get("pool_id")) != str(obj.get("pool_id")):
                continue
            if kind == "members":
                pool.setdefault("members", []).append(copy.deepcopy(obj))
            else:
                pool["healthmonitor"] = copy.deepcopy(obj)
    return result


def shows(tree: Tree, kind: str, obj: dict[str, Any]) -> bool:
    """Whether the tree already holds ``obj`` with the values it gives (the
    lists and nested objects aside)."""
    copies = find(tree, kind, str(obj[_key(kind)]))
    if not copies:
        return False
    for key, wanted in obj.items():
        if not _scalar(key, wanted):
            continue
        for existing in copies:
            have = existing.get(key)
            if key == "allowed_cidrs":
                if sorted(map(mapping.canonical_cidr, have or ())) != sorted(
                    map(mapping.canonical_cidr, wanted or ())
                ):
                    return False
            elif have != wanted:
                return False
    return True


def status_ids(tree: Tree) -> dict[str, list[str]]:
    return mapping.all_ids(tree)
