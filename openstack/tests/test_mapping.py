"""The mapping from Octavia's objects to xdpath owner documents, and the
refusals: pure functions, no services."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest
from octavia_lib.api.drivers import exceptions

from octavia_xdpath import agent, mapping, refusals, tree
from octavia_xdpath.driver import XdpathProviderDriver

LB_ID = "5f3a6f3e-0000-4000-8000-000000000001"
LISTENER_ID = "11111111-0000-4000-8000-000000000001"
POOL_ID = "22222222-0000-4000-8000-000000000001"
HM_ID = "33333333-0000-4000-8000-000000000001"


def member(n: int, address: str, weight: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "member_id": f"44444444-0000-4000-8000-00000000000{n}",
        "pool_id": POOL_ID,
        "address": address,
        "protocol_port": 80,
        "weight": weight,
        "admin_state_up": True,
        **extra,
    }


def loadbalancer(**changes: Any) -> dict[str, Any]:
    """A load balancer tree as DriverLibrary.get_loadbalancer gives it."""
    pool = {
        "pool_id": POOL_ID,
        "loadbalancer_id": LB_ID,
        "listener_id": LISTENER_ID,
        "protocol": "TCP",
        "lb_algorithm": "SOURCE_IP_PORT",
        "admin_state_up": True,
        "session_persistence": None,
        "members": [
            member(1, "10.0.0.11", 1),
            member(2, "10.0.0.12", 2),
            member(3, "10.0.0.13", 3),
        ],
        "healthmonitor": {
            "healthmonitor_id": HM_ID,
            "pool_id": POOL_ID,
            "type": "HTTP",
            "delay": 2,
            "timeout": 1,
            "max_retries": 2,
            "max_retries_down": 3,
            "http_method": "GET",
            "url_path": "/healthz",
            "expected_codes": "200-204",
            "admin_state_up": True,
        },
    }
    listener = {
        "listener_id": LISTENER_ID,
        "loadbalancer_id": LB_ID,
        "protocol": "TCP",
        "protocol_port": 80,
        "connection_limit": -1,
        "admin_state_up": True,
        "allowed_cidrs": ["10.1.0.0/16", "10.2.3.4/32"],
        "default_pool_id": POOL_ID,
        "default_pool": copy.deepcopy(pool),
        "l7policies": [],
    }
    lb = {
        "loadbalancer_id": LB_ID,
        "admin_state_up": True,
        "vip_address": "203.0.113.10",
        "additional_vips": [{"ip_address": "2001:db8:0:0::10", "subnet_id": "x"}],
        "listeners": [listener],
        "pools": [pool],
        "flavor": None,
    }
    lb.update(changes)
    return lb


def test_a_tcp_load_balancer_becomes_one_vip_per_address() -> None:
    plan = mapping.plan(loadbalancer())
    assert plan.owner == "octavia-" + LB_ID
    doc = plan.document
    assert [v["vip"] for v in doc["vips"]] == ["203.0.113.10:80/tcp", "[2001:db8::10]:80/tcp"]
    for vip in doc["vips"]:
        assert vip["flags"] == []  # SOURCE_IP_PORT: Maglev on the 5-tuple
        assert vip["allow"] == ["10.1.0.0/16", "10.2.3.4/32"]
        assert "encap" not in vip  # the balancer's default (ipip)
    assert [(b["vip"], b["address"], b["weight"]) for b in doc["backends"]] == [
        ("203.0.113.10:80/tcp", "10.0.0.11", 1),
        ("203.0.113.10:80/tcp", "10.0.0.12", 2),
        ("203.0.113.10:80/tcp", "10.0.0.13", 3),
        ("[2001:db8::10]:80/tcp", "10.0.0.11", 1),
        ("[2001:db8::10]:80/tcp", "10.0.0.12", 2),
        ("[2001:db8::10]:80/tcp", "10.0.0.13", 3),
    ]
    assert doc["health"][0] == {
        "vip": "203.0.113.10:80/tcp",
        "kind": "http",
        "interval": "2000ms",
        "timeout": "1000ms",
        "rise": 2,
        "fall": 3,
        "path": "/healthz",
        "status": "200-204",
    }
    assert len(doc["health"]) == 2
    assert doc["limits"] == []
    assert plan.vips_of_listener(LISTENER_ID) == [v["vip"] for v in doc["vips"]]
    assert plan.monitored_pools == {POOL_ID}
    assert len(plan.owner) <= 64 and re.fullmatch(r"[A-Za-z0-9_.:-]+", plan.owner)
    assert mapping.loadbalancer_of(plan.owner) == LB_ID
    assert mapping.loadbalancer_of("someone-else") is None


def test_udp_source_ip_and_persistence_hash_the_source() -> None:
    lb = loadbalancer()
    lb["listeners"][0]["protocol"] = "UDP"
    lb["listeners"][0]["protocol_port"] = 53
    for pool in tree.pools(lb):
        pool["protocol"] = "UDP"
        for m in pool["members"]:
            m["protocol_port"] = 53
        pool["lb_algorithm"] = "SOURCE_IP"
    doc = mapping.plan(lb).document
    assert doc["vips"][0]["vip"] == "203.0.113.10:53/udp"
    assert doc["vips"][0]["flags"] == ["source-hash"]

    lb = loadbalancer()
    for pool in tree.pools(lb):
        pool["session_persistence"] = {"type": "SOURCE_IP"}
    assert mapping.plan(lb).document["vips"][0]["flags"] == ["source-hash"]


def test_weights_drain_and_admin_down() -> None:
    lb = loadbalancer()
    for pool in tree.pools(lb):
        pool["members"][0]["weight"] = 0
        pool["members"][1]["admin_state_up"] = False
    plan = mapping.plan(lb)
    backends = {(b["address"], b["weight"]) for b in plan.document["backends"]}
    # weight 0 stays in the table drained; an admin-down member is taken out.
    assert backends == {("10.0.0.11", 0), ("10.0.0.13", 3)}
    assert set(plan.members) == {member(1, "").get("member_id"), member(3, "").get("member_id")}


def test_disabled_objects() -> None:
    assert mapping.empty(mapping.plan(loadbalancer(admin_state_up=False)).document)
    lb = loadbalancer()
    lb["listeners"][0]["admin_state_up"] = False
    assert mapping.empty(mapping.plan(lb).document)
    lb = loadbalancer()
    for pool in tree.pools(lb):
        pool["admin_state_up"] = False
    doc = mapping.plan(lb).document
    assert len(doc["vips"]) == 2 and doc["backends"] == [] and doc["health"] == []
    lb = loadbalancer()
    for pool in tree.pools(lb):
        pool["healthmonitor"]["admin_state_up"] = False
    plan = mapping.plan(lb)
    assert plan.document["health"] == [] and plan.monitored_pools == set()


def test_a_listener_without_pool_is_a_vip_without_backends() -> None:
    lb = loadbalancer(pools=[])
    lb["listeners"][0]["default_pool_id"] = None
    lb["listeners"][0]["default_pool"] = None
    doc = mapping.plan(lb).document
    assert len(doc["vips"]) == 2 and doc["backends"] == []


def test_tcp_monitor_and_flavor() -> None:
    lb = loadbalancer(
        flavor={
            "encapsulation": "gue",
            "gue_port": "6080",
            "source_pps_limit": 500,
            "ring_size": 65521,
            "sampling_rate": "100",
        }
    )
    for pool in tree.pools(lb):
        pool["healthmonitor"] = {
            "healthmonitor_id": HM_ID,
            "type": "TCP",
            "delay": 5,
            "timeout": 3,
            "max_retries": 1,
            "max_retries_down": 10,
        }
    doc = mapping.plan(lb).document
    vip = doc["vips"][0]
    assert (vip["encap"], vip["gue_port"], vip["ring_size"]) == ("gue", 6080, 65521)
    assert all(vip["sample_rate"] == 100 for vip in doc["vips"])
    assert doc["health"][0] == {
        "vip": "203.0.113.10:80/tcp",
        "kind": "tcp",
        "interval": "5000ms",
        "timeout": "3000ms",
        "rise": 1,
        "fall": 10,
    }
    assert doc["limits"][0] == {"vip": "203.0.113.10:80/tcp", "pps": "500", "per": "src"}


@pytest.mark.parametrize(("octavia_type", "kind"), [("PING", "ping"), ("UDP-CONNECT", "udp")])
def test_ping_and_udp_connect_monitors(octavia_type: str, kind: str) -> None:
    lb = loadbalancer()
    for pool in tree.pools(lb):
        pool["healthmonitor"].update(type=octavia_type)
        for key in ("url_path", "expected_codes", "http_method"):
            pool["healthmonitor"].pop(key, None)
    refusals.check_loadbalancer(lb)
    health = mapping.plan(lb).document["health"][0]
    assert health["kind"] == kind
    assert "path" not in health and "status" not in health


def test_the_in_force_document_compares_equal() -> None:
    """GET /v1/owners/{owner} shows the document with the balancer's
    defaults filled in; it is the same document."""
    desired = mapping.plan(loadbalancer()).document
    shown = copy.deepcopy(desired)
    for vip in shown["vips"]:
        vip.update(encap="ipip", gue_port=None, ring_size=65537, owner="x")
        vip["allow"] = list(reversed(vip["allow"]))
    for check in shown["health"]:
        check["port"] = 0
    shown["backends"].reverse()
    assert mapping.same(desired, shown)
    shown["backends"][0]["weight"] += 1
    assert not mapping.same(desired, shown)
    assert not mapping.same(desired, {})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda lb: lb["listeners"][0].update(protocol="HTTP"), "Use a TCP listener"),
        (lambda lb: lb["listeners"][0].update(protocol="HTTPS"), "Use a TCP listener"),
        (lambda lb: lb["listeners"][0].update(protocol="TERMINATED_HTTPS"), "layer-4"),
        (lambda lb: lb["listeners"][0].update(protocol="SCTP"), "TCP and UDP only"),
        (lambda lb: lb["listeners"][0].update(connection_limit=100), "connection_limit at -1"),
        (lambda lb: lb["listeners"][0].update(l7policies=[{"x": 1}]), "L7 policies"),
        (lambda lb: [p.update(protocol="PROXY") for p in tree.pools(lb)], "without the PROXY"),
        (
            lambda lb: [p.update(lb_algorithm="ROUND_ROBIN") for p in tree.pools(lb)],
            "SOURCE_IP_PORT",
        ),
        (
            lambda lb: [p.update(lb_algorithm="LEAST_CONNECTIONS") for p in tree.pools(lb)],
            "SOURCE_IP_PORT",
        ),
        (
            lambda lb: [
                p.update(session_persistence={"type": "APP_COOKIE", "cookie_name": "a"})
                for p in tree.pools(lb)
            ],
            "session_persistence SOURCE_IP",
        ),
        (
            lambda lb: [
                p.update(session_persistence={"type": "HTTP_COOKIE"}) for p in tree.pools(lb)
            ],
            "session_persistence SOURCE_IP",
        ),
        (
            lambda lb: [p["members"][0].update(protocol_port=8080) for p in tree.pools(lb)],
            "Use protocol_port 80",
        ),
        (lambda lb: [p["members"][0].update(backup=True) for p in tree.pools(lb)], "weight 0"),
        (
            lambda lb: [p["healthmonitor"].update(type="TLS-HELLO") for p in tree.pools(lb)],
            "Use a TCP, HTTP, PING or UDP-CONNECT monitor",
        ),
        (
            lambda lb: [p["healthmonitor"].update(type="SCTP") for p in tree.pools(lb)],
            "Use a TCP, HTTP, PING or UDP-CONNECT monitor",
        ),
        (
            lambda lb: [p["healthmonitor"].update(http_method="HEAD") for p in tree.pools(lb)],
            "GET",
        ),
        (lambda lb: lb.update(flavor={"syn_cookies": True}), "use source_pps_limit"),
        (lambda lb: lb.update(flavor={"sampling_rate": 0}), "N from 1 to 16777216"),
        (lambda lb: lb.update(flavor={"sampling_rate": 1 << 25}), "N from 1 to 16777216"),
        (lambda lb: lb.update(flavor={"encapsulation": "gre"}), "ipip or gue"),
        (lambda lb: lb.update(flavor={"encapsulation": "gue"}), "needs gue_port"),
        (lambda lb: lb.update(flavor={"ring_size": 65536}), "a prime"),
        (lambda lb: lb.update(flavor={"colour": "blue"}), "not an xdpath flavor option"),
    ],
)
def test_refusals_say_what_to_use_instead(change: Any, words: str) -> None:
    lb = loadbalancer()
    change(lb)
    with pytest.raises(refusals.Unsupported, match=re.escape(words)):
        refusals.check_loadbalancer(lb)
    # The worker's plan refuses the same, never serving it half.
    with pytest.raises(refusals.Unsupported):
        mapping.plan(lb)


def test_the_driver_raises_octavias_error_before_queueing() -> None:
    driver = XdpathProviderDriver()
    lb = loadbalancer()
    lb["listeners"][0]["protocol"] = "HTTP"
    with pytest.raises(exceptions.UnsupportedOptionError) as raised:
        driver.loadbalancer_create(lb)
    assert raised.value.user_fault_string.startswith("xdpath: listener protocol HTTP")
    with pytest.raises(exceptions.UnsupportedOptionError, match="SOURCE_IP_PORT"):
        driver.pool_update({"pool_id": POOL_ID}, {"lb_algorithm": "ROUND_ROBIN"})
    with pytest.raises(exceptions.UnsupportedOptionError, match="layer-7 provider"):
        driver.l7policy_create({"l7policy_id": "x"})
    with pytest.raises(exceptions.UnsupportedOptionError, match="availability-zone"):
        driver.validate_availability_zone({"balancers": "a"})
    assert driver.get_supported_availability_zone_metadata() == {}
    assert set(driver.get_supported_flavor_metadata()) == {
        "encapsulation",
        "gue_port",
        "source_pps_limit",
        "ring_size",
        "sampling_rate",
    }
    driver.validate_flavor({"encapsulation": "gue", "gue_port": 6080, "source_pps_limit": 10})


def test_tree_edits() -> None:
    lb = loadbalancer()
    gone = tree.without(lb, {("members", member(2, "")["member_id"])})
    assert [m["address"] for m in refusals.pools_of(gone)[POOL_ID]["members"]] == [
        "10.0.0.11",
        "10.0.0.13",
    ]
    no_pool = tree.without(lb, {("pools", POOL_ID)})
    assert mapping.plan(no_pool).document["backends"] == []
    updated = {"member_id": member(1, "")["member_id"], "weight": 9}
    assert not tree.shows(lb, "members", updated)
    lb2 = tree.overlay(lb, "members", updated)
    assert tree.shows(lb2, "members", updated)
    assert lb["pools"][0]["members"][0]["weight"] == 1  # the original is untouched
    new = member(4, "10.0.0.14")
    lb3 = tree.overlay(lb, "members", new)
    assert "10.0.0.14" in {b["address"] for b in mapping.plan(lb3).document["backends"]}
    cidrs = {"listener_id": LISTENER_ID, "allowed_cidrs": ["10.2.3.4/32", "10.1.0.0/16"]}
    assert tree.shows(lb, "listeners", cidrs)


def test_tree_plain_drops_unset() -> None:
    from octavia_lib.api.drivers import data_models

    obj = data_models.Member(member_id="m", address="10.0.0.1", weight=3)
    assert tree.plain(obj) == {"member_id": "m", "address": "10.0.0.1", "weight": 3}
    lb = data_models.LoadBalancer(
        loadbalancer_id="l", listeners=[data_models.Listener(listener_id="x", protocol="TCP")]
    )
    assert tree.plain(lb)["listeners"] == [{"listener_id": "x", "protocol": "TCP"}]


def test_operating_statuses_from_the_balancers_rows() -> None:
    lb = loadbalancer()
    plan = mapping.plan(lb)
    vip4, vip6 = plan.vips_of_pool(POOL_ID)

    def rows(healthy: dict[str, list[bool]]) -> list[dict[str, Any]]:
        # one row per VIP per balancer
        return [
            {"vip": vip, "backend": address, "healthy": ok}
            for address, oks in healthy.items()
            for ok in oks
            for vip in (vip4, vip6)
        ]

    def statuses(healthy: dict[str, list[bool]], reachable: bool = True) -> dict[str, str]:
        result = agent.operating_statuses(lb, plan, rows(healthy), reachable)
        return {e["id"][:8]: e["operating_status"] for es in result.values() for e in es}

    all_up = statuses({"10.0.0.11": [True, True], "10.0.0.12": [True, True], "10.0.0.13": [True]})
    assert set(all_up.values()) == {"ONLINE"}
    one_down = statuses(
        {"10.0.0.11": [False, False], "10.0.0.12": [True, True], "10.0.0.13": [True, True]}
    )
    assert one_down["22222222"] == "DEGRADED"  # the pool
    assert one_down["11111111"] == "DEGRADED"  # its listener
    assert one_down["5f3a6f3e"] == "DEGRADED"  # the load balancer
    member_rows = {
        e["id"]: e["operating_status"]
        for e in agent.operating_statuses(
            lb, plan, rows({"10.0.0.11": [False, False], "10.0.0.12": [True, False]}), True
        )["members"]
    }
    assert member_rows[member(1, "")["member_id"]] == "ERROR"
    assert member_rows[member(2, "")["member_id"]] == "DEGRADED"  # one balancer says down
    all_down = statuses({a: [False, False] for a in ("10.0.0.11", "10.0.0.12", "10.0.0.13")})
    assert all_down["22222222"] == "ERROR" and all_down["5f3a6f3e"] == "ERROR"
    unreachable = statuses({"10.0.0.11": [True]}, reachable=False)
    assert unreachable["5f3a6f3e"] == "DEGRADED"


def test_member_status_rules() -> None:
    up = [{"healthy": True}]
    assert agent.member_status({"admin_state_up": False}, True, up) == "OFFLINE"
    assert agent.member_status({"weight": 1}, False, up) == "NO_MONITOR"
    assert agent.member_status({"weight": 0}, True, up) == "DRAINING"
    assert agent.member_status({"weight": 1}, True, [{"healthy": False}]) == "ERROR"
    assert agent.pool_status({}, ["ONLINE", "OFFLINE"]) == "ONLINE"
    assert agent.pool_status({"admin_state_up": False}, ["ONLINE"]) == "OFFLINE"


def test_one_source_limit_per_vip_address_and_protocol() -> None:
    """xdpath's per-VIP limit covers the address and protocol on every port:
    a second listener on the same address gets no second limit."""
    lb = loadbalancer(flavor={"source_pps_limit": 50}, additional_vips=[])
    second = copy.deepcopy(lb["listeners"][0])
    second.update(listener_id="11111111-0000-4000-8000-000000000002", protocol_port=443)
    second["default_pool_id"] = None
    second["default_pool"] = None
    udp = copy.deepcopy(second)
    udp.update(listener_id="11111111-0000-4000-8000-000000000003", protocol="UDP")
    lb["listeners"] += [second, udp]
    doc = mapping.plan(lb).document
    assert [v["vip"] for v in doc["vips"]] == [
        "203.0.113.10:80/tcp",
        "203.0.113.10:443/tcp",
        "203.0.113.10:443/udp",
    ]
    assert [limit["vip"] for limit in doc["limits"]] == [
        "203.0.113.10:80/tcp",
        "203.0.113.10:443/udp",
    ]


def test_statuses_cover_every_object_and_the_load_balancer() -> None:
    from octavia_xdpath import worker

    lb = loadbalancer()
    plan = mapping.plan(lb)
    m1 = member(1, "")["member_id"]
    change = worker.Change(worker.UPDATE, "members", m1, loadbalancer_id=LB_ID)
    ok = worker._statuses(change, lb, set(), failed=False, lb_failed=False, plan=plan)
    flat = {(k, e["id"]): e["provisioning_status"] for k, es in ok.items() for e in es}
    assert flat[("loadbalancers", LB_ID)] == "ACTIVE"
    assert flat[("listeners", LISTENER_ID)] == "ACTIVE"
    assert flat[("pools", POOL_ID)] == "ACTIVE"
    assert flat[("healthmonitors", HM_ID)] == "ACTIVE"
    assert len([k for k in flat if k[0] == "members"]) == 3
    assert set(flat.values()) == {"ACTIVE"}

    failed = worker._statuses(change, lb, set(), failed=True, lb_failed=True, plan=plan)
    flat = {(k, e["id"]): e["provisioning_status"] for k, es in failed.items() for e in es}
    assert flat[("loadbalancers", LB_ID)] == "ERROR"
    assert flat[("members", m1)] == "ERROR"
    assert flat[("pools", POOL_ID)] == "ACTIVE"  # locked by Octavia, not left PENDING

    m2 = member(2, "")["member_id"]
    removal = {("members", m2)}
    delete = worker.Change(worker.DELETE, "members", m2, loadbalancer_id=LB_ID)
    wanted = tree.without(lb, removal)
    gone = worker._statuses(delete, wanted, removal, failed=True, lb_failed=True)
    flat = {(k, e["id"]): e["provisioning_status"] for k, es in gone.items() for e in es}
    assert flat[("members", m2)] == "DELETED"  # Octavia forgets it; the agent repairs
    assert flat[("loadbalancers", LB_ID)] == "ERROR"

    create = worker.Change(worker.CREATE, "loadbalancers", LB_ID, loadbalancer_id=LB_ID)
    first = worker._statuses(create, lb, set(), failed=False, lb_failed=False, plan=plan)
    operating = {e["id"]: e.get("operating_status") for es in first.values() for e in es}
    assert operating[LB_ID] == "ONLINE" and operating[LISTENER_ID] == "ONLINE"
    assert operating[m1] is None  # monitored: the agent says ONLINE or ERROR


def test_a_member_at_an_address_the_pool_has_is_refused_at_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hostile report's F3: Octavia compares addresses as strings and took
    # 2001:db8:1:0::11 beside 2001:db8:1::11; the worker's plan refused the
    # whole load balancer from then on.
    from octavia_xdpath import driver as driver_module
    from octavia_xdpath import worker

    pool = loadbalancer()["pools"][0]
    pool["members"].append(member(4, "2001:db8:1::11"))
    found = {"pools": pool, "listeners": loadbalancer()["listeners"][0]}
    monkeypatch.setattr(driver_module, "_lookup", lambda kind, _: found[kind])
    queued: list[worker.Change] = []
    monkeypatch.setattr(worker, "submit", queued.append)
    driver = XdpathProviderDriver()
    for address in ("2001:db8:1:0::11", "10.0.0.11"):
        with pytest.raises(exceptions.UnsupportedOptionError, match="Keep one member per"):
            driver.member_create(member(5, address))
    with pytest.raises(exceptions.UnsupportedOptionError, match="2001:db8:1::11"):
        driver.member_batch_update(
            POOL_ID, [member(4, "2001:db8:1::11"), member(5, "2001:db8:1:0:0::11")]
        )
    duplicated = copy.deepcopy(pool)
    duplicated["members"].append(member(5, "2001:db8:1:0::11", admin_state_up=False))
    with pytest.raises(exceptions.UnsupportedOptionError, match="Keep one member per"):
        driver.pool_create(duplicated)
    with pytest.raises(exceptions.UnsupportedOptionError, match="Keep one member per"):
        driver.loadbalancer_create(loadbalancer(pools=[duplicated]))
    assert queued == []
    # The same member again (Octavia's own row) and a new address pass.
    driver.member_create(member(4, "2001:db8:1::11"))
    driver.member_create(member(5, "2001:db8:1::12"))
    assert [change.object_id for change in queued] == [
        member(4, "")["member_id"],
        member(5, "")["member_id"],
    ]


def _poisoned() -> dict[str, Any]:
    """A load balancer Octavia holds with two members at one address (as
    Octavia let in before the driver refused it): the plan refuses it."""
    lb = loadbalancer()
    for pool in tree.pools(lb):
        pool["members"].append(member(4, "10.0.0.11"))  # member 1's
    return lb


def _run_refused(
    monkeypatch: pytest.MonkeyPatch, change: Any, lb: dict[str, Any]
) -> dict[tuple[str, str], str]:
    from octavia_xdpath import worker

    pushed: list[dict[str, list[dict[str, Any]]]] = []
    monkeypatch.setattr(worker, "_read", lambda *_: copy.deepcopy(lb))
    monkeypatch.setattr(worker, "push_status", pushed.append)

    def no_apply(*_: Any) -> list[Any]:
        raise AssertionError("nothing may be sent for a refused plan")

    monkeypatch.setattr(worker, "apply", no_apply)
    worker.process(change)
    [status] = pushed
    return {(k, e["id"]): e["provisioning_status"] for k, es in status.items() for e in es}


def test_a_refused_plan_reports_nothing_deleted_or_active_it_did_not_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from octavia_xdpath import worker

    lb = _poisoned()
    with pytest.raises(refusals.Unsupported):
        mapping.plan(lb)
    m2, m4 = (member(n, "")["member_id"] for n in (2, 4))
    # Deleting another member: it stays on the balancers, so it is ERROR,
    # not DELETED; the refused member is not turned ACTIVE.
    flat = _run_refused(
        monkeypatch, worker.Change(worker.DELETE, "members", m2, loadbalancer_id=LB_ID), lb
    )
    assert flat[("members", m2)] == "ERROR"
    assert ("members", m4) not in flat
    # The load balancer and pool stay mutable: the user can delete the cause.
    assert flat[("loadbalancers", LB_ID)] == "ACTIVE"
    assert flat[("pools", POOL_ID)] == "ACTIVE"
    assert flat[("listeners", LISTENER_ID)] == "ACTIVE"
    assert set(flat.values()) == {"ACTIVE", "ERROR"}
    # An update of a member: that one ERROR, the others untouched.
    flat = _run_refused(
        monkeypatch,
        worker.Change(worker.UPDATE, "members", m4, loadbalancer_id=LB_ID,
                      obj={"member_id": m4, "weight": 7}),
        lb,
    )  # fmt: skip
    assert flat[("members", m4)] == "ERROR"
    assert not any(kind == "members" and i != m4 for kind, i in flat)
    # A batch: its members ERROR, the pool ACTIVE (a batch needs it ACTIVE).
    batch = worker.Change(
        worker.BATCH, "pools", POOL_ID, loadbalancer_id=LB_ID, pool_id=POOL_ID,
        members=[member(1, "10.0.0.11"), member(2, "10.0.0.11")],
    )  # fmt: skip
    flat = _run_refused(monkeypatch, batch, loadbalancer())
    assert flat[("pools", POOL_ID)] == "ACTIVE"
    assert flat[("members", member(1, "")["member_id"])] == "ERROR"
    assert flat[("members", m2)] == "ERROR"
    assert flat[("members", member(3, "")["member_id"])] == "ERROR"  # removed, still there
    # A load balancer created unservable: nothing of it is anywhere.
    create = worker.Change(worker.CREATE, "loadbalancers", LB_ID, loadbalancer_id=LB_ID)
    flat = _run_refused(monkeypatch, create, lb)
    assert set(flat.values()) == {"ERROR"}
    assert len(flat) == 1 + 1 + 1 + 4 + 1  # load balancer, listener, pool, members, monitor


def test_the_agent_keeps_the_balancers_of_a_refused_load_balancer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from octavia_xdpath import worker

    lb = _poisoned()

    class Library:
        def get_loadbalancer(self, _: str) -> dict[str, Any]:
            return copy.deepcopy(lb)

    class Fleet:
        def view(self, _: str) -> dict[str, Any]:
            raise AssertionError("an unservable load balancer is left as it is")

    monkeypatch.setattr(worker, "library", Library)
    state = agent.AgentState()
    for _ in range(3):
        agent._one_loadbalancer(state, Fleet(), LB_ID, 0.0, False)  # type: ignore[arg-type]
    said = [r for r in caplog.records if "cannot be served" in r.getMessage()]
    assert len(said) == 1, "said once, not every round"
    assert LB_ID not in state.verify
    # Servable again: checked, and ACTIVE again once every balancer agrees.
    lb = loadbalancer()
    monkeypatch.setattr(agent, "_reconcile", lambda **_: None)
    monkeypatch.setattr(agent, "_operating", lambda *_: None)

    class Agreeing:
        def view(self, _: str) -> dict[str, Any]:
            return {}

    agent._one_loadbalancer(state, Agreeing(), LB_ID, 0.0, False)  # type: ignore[arg-type]
    assert LB_ID in state.verify and LB_ID not in state.refused


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "86401", "0.1"])
def test_durations_are_finite_seconds(text: str, tmp_path: Any) -> None:
    # As F9 for neutron-xdpath-agent: oslo.config's bounds let nan through
    # (the agent's round would spin) and inf made its wait overflow.
    from oslo_config import cfg

    from octavia_xdpath import config

    def status_interval(value: str) -> float:
        conf = cfg.ConfigOpts()
        conf.register_opts(config.options(), group="xdpath")
        (tmp_path / "octavia.conf").write_text(f"[xdpath]\nstatus_interval = {value}\n")
        conf(["--config-file", str(tmp_path / "octavia.conf")])
        return float(conf.xdpath.status_interval)

    with pytest.raises(ValueError):
        status_interval(text)
    assert status_interval("2.5") == 2.5


def test_a_change_is_recorded_until_its_statuses_reach_octavia(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The hostile report's F6: octavia-api dying after the balancers took a
    # change and before its statuses reached Octavia left the load balancer
    # PENDING_UPDATE for ever; the record lets the agent end it.
    from octavia_xdpath import config, pending, worker

    monkeypatch.setattr(config, "pending_dir", lambda: str(tmp_path))
    lb = loadbalancer()
    monkeypatch.setattr(worker, "_read", lambda *_: copy.deepcopy(lb))
    seen: list[set[str]] = []

    def apply(*_: Any) -> list[Any]:
        seen.append(pending.listed())
        return []

    monkeypatch.setattr(worker, "apply", apply)

    def dies(_: Any) -> None:
        raise SystemExit("octavia-api killed")

    monkeypatch.setattr(worker, "push_status", dies)
    m1 = member(1, "")["member_id"]
    change = worker.Change(worker.UPDATE, "members", m1, loadbalancer_id=LB_ID,
                           obj={"member_id": m1, "weight": 1})  # fmt: skip
    with pytest.raises(SystemExit):
        worker.process(change)
    assert seen == [{LB_ID}]
    assert pending.listed() == {LB_ID}, "outlives the worker"
    # Reported: forgotten.
    monkeypatch.setattr(worker, "push_status", lambda _: None)
    worker.process(change)
    assert pending.listed() == set()


def test_the_agent_ends_the_pending_state_a_dead_worker_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import os

    from octavia_xdpath import client, config, pending, worker

    monkeypatch.setattr(config, "pending_dir", lambda: str(tmp_path))
    values = {"reconcile_grace": 6.0, "status_interval": 3.0}
    monkeypatch.setattr(config, "value", values.__getitem__)
    lb = loadbalancer()
    document = mapping.plan(lb).document

    class Library:
        def get_loadbalancer(self, _: str) -> dict[str, Any]:
            return copy.deepcopy(lb)

        def update_listener_statistics(self, _: Any) -> None:
            pass

        def update_loadbalancer_status(self, _: Any) -> None:
            pass

    class Fleet:
        def __init__(self, _: Any) -> None:
            self.balancers: list[Any] = []

        def owners(self) -> dict[str, Any]:
            return {"lb1": [mapping.owner_of(LB_ID)], "lb2": [mapping.owner_of(LB_ID)]}

        def view(self, _: str) -> dict[str, Any]:
            # Both balancers took the change: they agree with Octavia.
            return {e: {"document": document, "backends": [], "vips": []} for e in ("lb1", "lb2")}

    pushed: list[dict[str, Any]] = []
    monkeypatch.setattr(worker, "library", Library)
    monkeypatch.setattr(worker, "push_status", pushed.append)
    monkeypatch.setattr(client, "Fleet", Fleet)
    monkeypatch.setattr(config, "settings", lambda: None)
    pending.remember(LB_ID)
    state = agent.AgentState()
    state.first = False  # not a start: no balancer "came back"
    state.reachable = {"lb1", "lb2"}
    agent.one_round(state)
    assert pushed == [], "a young record belongs to a change in flight"
    assert pending.listed() == {LB_ID}
    old = os.stat(tmp_path / LB_ID).st_mtime - 7
    os.utime(tmp_path / LB_ID, (old, old))
    agent.one_round(state)
    [status] = pushed
    assert status["loadbalancers"] == [{"id": LB_ID, "provisioning_status": "ACTIVE"}]
    assert {e["provisioning_status"] for e in status["members"]} == {"ACTIVE"}
    assert pending.listed() == set()


def test_a_change_the_balancers_refuse_leaves_the_load_balancer_mutable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The hostile report's F11: the 33rd VIP refused (409 table_full) put the
    # load balancer in ERROR, where Octavia lets nothing but its delete
    # through: the listener that did not fit could not be deleted.
    from octavia_xdpath import client, config, worker

    monkeypatch.setattr(config, "pending_dir", lambda: str(tmp_path))
    lb = loadbalancer()
    monkeypatch.setattr(worker, "_read", lambda *_: copy.deepcopy(lb))
    pushed: list[dict[str, list[dict[str, Any]]]] = []
    monkeypatch.setattr(worker, "push_status", pushed.append)
    full = client.BalancerError("lb1", "409 table_full: at most 32 VIPs", 409, "table_full")
    full2 = client.BalancerError("lb2", "409 table_full: at most 32 VIPs", 409, "table_full")
    down = client.BalancerError("lb2", "connection refused")
    monkeypatch.setattr(worker, "_refused_everywhere", lambda errors: len(errors) == 2)
    change = worker.Change(worker.CREATE, "listeners", LISTENER_ID, loadbalancer_id=LB_ID,
                           obj={"listener_id": LISTENER_ID, "protocol_port": 80})  # fmt: skip

    def flat() -> dict[tuple[str, str], str]:
        status = pushed.pop()
        return {(k, e["id"]): e["provisioning_status"] for k, es in status.items() for e in es}

    monkeypatch.setattr(worker, "apply", lambda *_: [full, full2])
    worker.process(change)
    refused = flat()
    assert refused[("listeners", LISTENER_ID)] == "ERROR"
    assert refused[("loadbalancers", LB_ID)] == "ACTIVE"
    # Refused by one balancer and taken by the other: the fleet differs, the
    # load balancer is ERROR (the review's point: it was reported ACTIVE).
    monkeypatch.setattr(worker, "apply", lambda *_: [full])
    worker.process(change)
    assert flat()[("loadbalancers", LB_ID)] == "ERROR"
    # A balancer down is not a refusal: the load balancer ERROR until the
    # agent puts it right, as before.
    monkeypatch.setattr(worker, "apply", lambda *_: [full, down])
    worker.process(change)
    assert flat()[("loadbalancers", LB_ID)] == "ERROR"


def test_a_refusal_counts_as_the_fleets_only_from_every_balancer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from octavia_xdpath import client, config, worker

    class Balancer:
        def __init__(self, endpoint: str) -> None:
            self.endpoint = endpoint

    class Fleet:
        def __init__(self, _: Any) -> None:
            self.balancers = [Balancer("lb1"), Balancer("lb2")]

    monkeypatch.setattr(client, "Fleet", Fleet)
    monkeypatch.setattr(config, "settings", lambda: None)
    first = client.BalancerError("lb1", "409 table_full", 409)
    second = client.BalancerError("lb2", "409 table_full", 409)
    assert worker._refused_everywhere([first, second])
    assert not worker._refused_everywhere([first])


def test_a_refusal_is_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from octavia_xdpath import client, config, worker

    calls: list[list[str]] = []

    class Balancer:
        def __init__(self, endpoint: str) -> None:
            self.endpoint = endpoint

    class Fleet:
        def __init__(self, _: Any) -> None:
            self.balancers = [Balancer("lb1"), Balancer("lb2")]

        def apply(self, *_: Any) -> dict[str, Any]:
            calls.append([b.endpoint for b in self.balancers])
            answers = {
                "lb1": client.BalancerError("lb1", "409 table_full", 409),
                "lb2": client.BalancerError("lb2", "timed out"),
            }
            return {b.endpoint: answers[b.endpoint] for b in self.balancers}

    monkeypatch.setattr(client, "Fleet", Fleet)
    monkeypatch.setattr(config, "settings", lambda: None)
    monkeypatch.setattr(config, "value", {"push_attempts": 3}.__getitem__)
    monkeypatch.setattr(time, "sleep", lambda _: None)
    errors = worker.apply("octavia-x", {})
    assert calls == [["lb1", "lb2"], ["lb2"], ["lb2"]]
    assert [(e.endpoint, e.refused) for e in errors] == [("lb1", True), ("lb2", False)]
