"""End to end: Octavia's API (openstacksdk), the xdpath driver in
octavia-api, its agent in octavia-driver-agent, two xdpath balancers each
with its own xdpathd on TCP with a token, three nginx backends behind
`xdpath decap`, clients in network namespaces (`testenv.bed`). The driver is
never called directly; the balancers are only read here (their API), never
changed, except by stopping and starting one's xdpathd."""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openstack.exceptions
import pytest
from openstack.connection import Connection

from octavia_xdpath import client, mapping
from testenv import OctaviaEnv
from testenv.bed import BACKENDS, BALANCERS, Bed
from testenv.scratch import scratch_bed

SUBNET_ID = str(uuid.UUID(int=0x5E))
SUBNET6_ID = str(uuid.UUID(int=0x5F))
# An additional VIP: on the balancers beside the IPv4 one (the bed carries
# IPv4 traffic only).
VIP6 = "2001:db8::50"
WEIGHTS = {"b1": 1, "b2": 2, "b3": 3}
# The health monitor: a check a second, one pass brings a member back, two
# failures take it out.
MONITOR = {"delay": 1, "timeout": 1, "max_retries": 1, "max_retries_down": 2}
PPS_LIMIT = 100_000
# The flavor's sampling_rate: every frame to the load balancer's VIPs.
SAMPLE_EVERY = 1


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    with scratch_bed("xdpath-bed-", lambda workdir: Bed(workdir).build()) as bed:
        yield bed


@pytest.fixture(scope="module")
def env(bed: Bed, request: pytest.FixtureRequest) -> Iterator[OctaviaEnv]:
    octavia = OctaviaEnv(
        balancer_endpoints=bed.endpoints,
        extra_config={
            "xdpath": {
                "token_file": str(bed.token_file),
                "request_timeout": "2",
                "status_interval": "1",
                "reconcile_grace": "2",
            }
        },
    )
    octavia.start()
    try:
        yield octavia
    finally:
        if request.session.testsfailed:
            from tests.conftest import _logs

            _logs.append(octavia.logs() + "\n" + bed.logs())
        octavia.stop()


@pytest.fixture(scope="module")
def os_conn(env: OctaviaEnv) -> Connection:
    connection: Connection = env.connection()
    return connection


@pytest.fixture(scope="module")
def fleet(bed: Bed) -> client.Fleet:
    return client.Fleet(
        client.Settings(endpoints=tuple(bed.endpoints), token=bed.token_file.read_text().strip())
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Waits until ``check()``; how long it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - start


class Lb:
    """The load balancer the tests build, by name."""

    id = ""
    listener = ""
    pool = ""
    members: dict[str, str] = {}  # noqa: RUF012 (filled in once)
    flavor = ""


def lb_status(conn: Connection) -> tuple[str, str]:
    lb = conn.load_balancer.get_load_balancer(Lb.id)
    return str(lb.provisioning_status), str(lb.operating_status)


def wait_active(conn: Connection, timeout: float = 30.0) -> None:
    def active() -> bool:
        status = lb_status(conn)[0]
        assert status != "ERROR", "the load balancer went to ERROR"
        return status == "ACTIVE"

    wait_for("the load balancer ACTIVE", active, timeout)


def views(fleet: client.Fleet) -> dict[str, dict[str, Any]]:
    result = {}
    for endpoint, view in fleet.view(mapping.owner_of(Lb.id)).items():
        assert isinstance(view, dict), f"{endpoint}: {view}"
        result[endpoint] = view
    return result


def member_statuses(conn: Connection) -> dict[str, str]:
    return {m.name: str(m.operating_status) for m in conn.load_balancer.members(Lb.pool)}


def test_a_load_balancer_goes_active_online_on_both_balancers(
    os_conn: Connection, bed: Bed, fleet: client.Fleet
) -> None:
    conn = os_conn
    profile = conn.load_balancer.create_flavor_profile(
        name="xdpath-limited",
        provider_name="xdpath",
        flavor_data=json.dumps({"source_pps_limit": PPS_LIMIT, "sampling_rate": SAMPLE_EVERY}),
    )
    Lb.flavor = conn.load_balancer.create_flavor(
        name="xdpath-limited", flavor_profile_id=profile.id, enabled=True
    ).id
    lb = conn.load_balancer.create_load_balancer(
        name="e2e",
        vip_subnet_id=SUBNET_ID,
        vip_address=bed.vip,
        additional_vips=[{"subnet_id": SUBNET6_ID, "ip_address": VIP6}],
        flavor_id=Lb.flavor,
    )
    Lb.id = lb.id
    wait_active(conn)
    listener = conn.load_balancer.create_listener(
        name="web",
        loadbalancer_id=Lb.id,
        protocol="TCP",
        protocol_port=80,
        allowed_cidrs=[f"{bed.address('client')}/32"],
    )
    Lb.listener = listener.id
    wait_active(conn)
    pool = conn.load_balancer.create_pool(
        name="web", listener_id=Lb.listener, protocol="TCP", lb_algorithm="SOURCE_IP_PORT"
    )
    Lb.pool = pool.id
    wait_active(conn)
    Lb.members = {}
    for backend in BACKENDS:
        member = conn.load_balancer.create_member(
            Lb.pool,
            name=backend,
            address=bed.address(backend),
            protocol_port=80,
            weight=WEIGHTS[backend],
        )
        Lb.members[backend] = member.id
        wait_active(conn)
    conn.load_balancer.create_health_monitor(
        pool_id=Lb.pool, type="HTTP", url_path="/", expected_codes="200", **MONITOR
    )
    wait_active(conn)

    def all_online() -> bool:
        return set(member_statuses(conn).values()) == {"ONLINE"} and lb_status(conn) == (
            "ACTIVE",
            "ONLINE",
        )

    wait_for("every member ONLINE", all_online, 20)
    assert conn.load_balancer.get_listener(Lb.listener).provisioning_status == "ACTIVE"
    assert conn.load_balancer.get_listener(Lb.listener).operating_status == "ONLINE"
    assert conn.load_balancer.get_pool(Lb.pool).operating_status == "ONLINE"
    for m in conn.load_balancer.members(Lb.pool):
        assert m.provisioning_status == "ACTIVE"
    hm = conn.load_balancer.get_health_monitor(
        conn.load_balancer.get_pool(Lb.pool).health_monitor_id
    )
    assert hm.provisioning_status == "ACTIVE"

    # Both balancers hold the same document, and the same Maglev table.
    seen = views(fleet)
    documents = [mapping.canonical(v["document"]) for v in seen.values()]
    assert documents[0] == documents[1]
    vips = [f"{bed.vip}:80/tcp", f"[{VIP6}]:80/tcp"]
    assert sorted(documents[0]["vips"]) == sorted(vips)
    assert {vip[-1] for vip in documents[0]["vips"].values()} == {SAMPLE_EVERY}
    assert documents[0]["backends"] == sorted(
        (vip, bed.address(b), WEIGHTS[b]) for vip in vips for b in BACKENDS
    )
    assert documents[0]["limits"] == sorted((vip, str(PPS_LIMIT), "src") for vip in vips)
    assert len(documents[0]["health"]) == 2
    # Same backends and weights: the same table, on both balancers and for
    # both VIPs.
    digests = [t["digest"] for v in seen.values() for t in v["tables"]]
    assert len(digests) == 4 and len(set(digests)) == 1, digests
    assert all(v["in_force"] for v in seen.values())


def test_a_fully_populated_create_reports_every_object(
    os_conn: Connection, bed: Bed, fleet: client.Fleet
) -> None:
    """One call with listener, pool, members and monitor: every object
    ACTIVE, on both balancers; then a cascade delete takes it off both."""
    conn = os_conn
    vip = "203.0.113.51"
    lb = conn.load_balancer.create_load_balancer(
        name="populated",
        vip_subnet_id=SUBNET_ID,
        vip_address=vip,
        listeners=[
            {
                "name": "udp",
                "protocol": "UDP",
                "protocol_port": 53,
                "default_pool": {
                    "name": "udp",
                    "protocol": "UDP",
                    "lb_algorithm": "SOURCE_IP",
                    "members": [
                        {"address": bed.address(b), "protocol_port": 53, "weight": WEIGHTS[b]}
                        for b in BACKENDS
                    ],
                    # Octavia wants a UDP-CONNECT delay above 3 s.
                    "healthmonitor": {"type": "UDP-CONNECT", **{**MONITOR, "delay": 4}},
                },
            }
        ],
    )

    def objects() -> list[str]:
        current = conn.load_balancer.get_load_balancer(lb.id)
        statuses = [current.provisioning_status]
        for listener in current.listeners:
            statuses.append(conn.load_balancer.get_listener(listener["id"]).provisioning_status)
        for ref in current.pools:
            pool = conn.load_balancer.get_pool(ref["id"])
            statuses.append(pool.provisioning_status)
            statuses += [m.provisioning_status for m in conn.load_balancer.members(pool.id)]
            monitor = conn.load_balancer.get_health_monitor(pool.health_monitor_id)
            statuses.append(monitor.provisioning_status)
        return [str(s) for s in statuses]

    wait_for("every object ACTIVE", lambda: set(objects()) == {"ACTIVE"}, 30)
    assert len(objects()) == 7  # load balancer, listener, pool, 3 members, monitor
    # No member serves UDP 53: their ICMP port unreachable fails the
    # balancers' UDP-CONNECT probes.
    pool_id = conn.load_balancer.get_load_balancer(lb.id).pools[0]["id"]
    wait_for(
        "every member ERROR by UDP-CONNECT",
        lambda: {m.operating_status for m in conn.load_balancer.members(pool_id)} == {"ERROR"},
        30,
    )
    owner = mapping.owner_of(lb.id)
    for endpoint, view in fleet.view(owner).items():
        assert isinstance(view, dict), endpoint
        document = mapping.canonical(view["document"])
        udp = f"{vip}:53/udp"
        assert list(document["vips"]) == [udp]
        assert document["vips"][udp][2] == ("source-hash",)
        assert [h[1] for h in document["health"]] == ["udp"]
        assert len(document["backends"]) == 3
    conn.load_balancer.delete_load_balancer(lb.id, cascade=True)
    wait_for(
        "off both balancers",
        lambda: all(b.get_owner(owner) is None for b in fleet.balancers),
        30,
    )


def sampled_packets_to(fleet: client.Fleet, balancer: int, address: str) -> int:
    """The packets to ``address`` a balancer's top talkers estimate from its
    samples (over their 10 s window)."""
    answer = fleet.balancers[balancer]._call("GET", "/v1/top?kind=destinations&limit=100")
    assert answer["running"], answer
    return sum(
        int(row["packets"]) for row in answer["destinations"] if address in json.dumps(row["key"])
    )


def test_traffic_through_either_balancer_respects_weights(
    os_conn: Connection, bed: Bed, fleet: client.Fleet
) -> None:
    total = 0
    counts: collections.Counter[str] = collections.Counter()
    for index, balancer in enumerate(BALANCERS):
        bed.route_via(balancer)
        answers = bed.requests(300)
        assert len(answers) == 300 and set(answers) <= set(BACKENDS), answers[:10]
        counts.update(answers)
        total += len(answers)

        # The flavor's sampling_rate 1: the balancer sampled every frame to
        # the VIP (at least a SYN, an ACK and a request per answer), though
        # its interface samples nothing.
        def sampled(index: int = index) -> bool:
            return sampled_packets_to(fleet, index, bed.vip) >= 3 * 300

        wait_for(f"{balancer}'s samples of the VIP's traffic", sampled, 5)
    bed.route_via("lb1")
    for backend, weight in WEIGHTS.items():
        share = counts[backend] / total
        assert abs(share - weight / 6) < 0.08, (backend, dict(counts))


def test_a_connection_keeps_its_backend_whichever_balancer(bed: Bed) -> None:
    # Above the kernel's ephemeral ports: no earlier connection used them.
    ports = list(range(61000, 61060))
    bed.route_via("lb1")
    first = bed.flows(ports)
    bed.route_via("lb2")
    second = bed.flows(ports)
    bed.route_via("lb1")
    assert set(first.values()) == set(BACKENDS), first
    assert first == second


def test_a_client_outside_allowed_cidrs_gets_nothing(bed: Bed, fleet: client.Fleet) -> None:
    answers = bed.requests(3, role="outsider", timeout=1)
    assert answers == [] or set(answers) == {""}, answers
    dropped = sum(
        row["drops"]["not_allowed"] for view in views(fleet).values() for row in view["vips"]
    )
    assert dropped > 0
    # The allowed client is still answered.
    assert set(bed.requests(5)) <= set(BACKENDS)


def test_a_failing_member_goes_error_and_comes_back(os_conn: Connection, bed: Bed) -> None:
    conn = os_conn
    bed.stop_nginx("b1")
    try:
        period = MONITOR["delay"] * MONITOR["max_retries_down"] + MONITOR["timeout"]
        # The monitor's period, one agent round, and slack for this machine.
        wait_for(
            "b1 ERROR and the pool DEGRADED",
            lambda: (
                member_statuses(conn)["b1"] == "ERROR"
                and conn.load_balancer.get_pool(Lb.pool).operating_status == "DEGRADED"
            ),
            period + 6,
        )
        assert member_statuses(conn)["b2"] == "ONLINE"
        assert lb_status(conn) == ("ACTIVE", "DEGRADED")
        # xdpath took it out of the table: new connections (source ports no
        # connection used before, so no connection-table entry) reach b2 or b3.
        answered = bed.flows(range(61100, 61130))
        assert set(answered.values()) == {"b2", "b3"}, answered
    finally:
        bed.start_nginx("b1")
    wait_for(
        "b1 ONLINE again",
        lambda: (
            member_statuses(conn)["b1"] == "ONLINE"
            and conn.load_balancer.get_pool(Lb.pool).operating_status == "ONLINE"
        ),
        15,
    )


def test_statistics_reach_octavia(os_conn: Connection) -> None:
    def nonzero() -> bool:
        stats = os_conn.load_balancer.get_load_balancer_statistics(Lb.id)
        return bool(stats.bytes_in > 0 and stats.total_connections > 0)

    wait_for("non-zero statistics", nonzero, 10)
    stats = os_conn.load_balancer.get_load_balancer_statistics(Lb.id)
    # The outsider's refused packets are counted as request errors; bytes_out
    # is 0 under direct server return.
    assert stats.request_errors > 0
    assert stats.bytes_out == 0
    assert stats.total_connections >= 600


def test_a_balancer_down_is_error_and_reconciled_when_back(
    os_conn: Connection, bed: Bed, fleet: client.Fleet
) -> None:
    conn = os_conn
    bed.stop_xdpathd("lb2")
    try:
        conn.load_balancer.update_member(Lb.members["b3"], Lb.pool, weight=1)
        wait_for("the load balancer ERROR", lambda: lb_status(conn)[0] == "ERROR", 30)
        lb1 = fleet.balancers[0].get_owner(mapping.owner_of(Lb.id))
        assert lb1 is not None
        weights = {b["address"]: b["weight"] for b in lb1["document"]["backends"]}
        assert weights[bed.address("b3")] == 1  # the balancer that was up has it
    finally:
        bed.start_xdpathd("lb2")
    wait_for("the load balancer ACTIVE again", lambda: lb_status(conn)[0] == "ACTIVE", 30)
    seen = views(fleet)
    documents = [mapping.canonical(v["document"]) for v in seen.values()]
    assert documents[0] == documents[1]
    assert (f"{bed.vip}:80/tcp", bed.address("b3"), 1) in documents[1]["backends"]
    assert (f"[{VIP6}]:80/tcp", bed.address("b3"), 1) in documents[1]["backends"]
    digests = {t["digest"] for v in seen.values() for t in v["tables"]}
    assert len(digests) == 1
    member = conn.load_balancer.get_member(Lb.members["b3"], Lb.pool)
    assert member.provisioning_status == "ACTIVE"
    wait_for("ONLINE", lambda: lb_status(conn) == ("ACTIVE", "ONLINE"), 15)


def test_a_load_balancer_made_while_every_balancer_is_down_is_finished_when_they_are_back(
    os_conn: Connection, bed: Bed, fleet: client.Fleet
) -> None:
    """No balancer holds anything of it, so only the driver's pending record
    leads the agent to it. Its PING monitor finds the member ONLINE."""
    conn = os_conn
    vip = "203.0.113.52"
    for role in BALANCERS:
        bed.stop_xdpathd(role)
    try:
        lb = conn.load_balancer.create_load_balancer(
            name="while-down",
            vip_subnet_id=SUBNET_ID,
            vip_address=vip,
            listeners=[
                {
                    "name": "while-down",
                    "protocol": "TCP",
                    "protocol_port": 5999,
                    "default_pool": {
                        "name": "while-down",
                        "protocol": "TCP",
                        "lb_algorithm": "SOURCE_IP_PORT",
                        "members": [{"address": bed.address("b1"), "protocol_port": 5999}],
                        "healthmonitor": {"type": "PING", **MONITOR},
                    },
                }
            ],
        )

        def status() -> str:
            return str(conn.load_balancer.get_load_balancer(lb.id).provisioning_status)

        wait_for("ERROR while every balancer is down", lambda: status() == "ERROR", 60)
    finally:
        for role in BALANCERS:
            bed.start_xdpathd(role)
    owner = mapping.owner_of(lb.id)
    wait_for("ACTIVE once they are back", lambda: status() == "ACTIVE", 45)
    for balancer in fleet.balancers:
        view = balancer.get_owner(owner)
        assert view is not None and list(mapping.canonical(view["document"])["vips"]) == [
            f"{vip}:5999/tcp"
        ]
    pool_id = conn.load_balancer.get_load_balancer(lb.id).pools[0]["id"]
    wait_for(
        "the member ONLINE by PING",
        lambda: [m.operating_status for m in conn.load_balancer.members(pool_id)] == ["ONLINE"],
        30,
    )
    conn.load_balancer.delete_load_balancer(lb.id, cascade=True)
    wait_for(
        "off both balancers",
        lambda: all(b.get_owner(owner) is None for b in fleet.balancers),
        30,
    )
    assert lb_status(conn)[0] == "ACTIVE"  # the first load balancer is untouched


@pytest.mark.parametrize(
    ("create", "words"),
    [
        (
            lambda conn: conn.load_balancer.create_listener(
                loadbalancer_id=Lb.id, protocol="HTTP", protocol_port=8080
            ),
            "xdpath: listener protocol HTTP",
        ),
        (
            lambda conn: conn.load_balancer.create_pool(
                loadbalancer_id=Lb.id, protocol="TCP", lb_algorithm="ROUND_ROBIN"
            ),
            "xdpath: lb_algorithm ROUND_ROBIN",
        ),
        (
            lambda conn: conn.load_balancer.create_member(
                Lb.pool, address="10.0.0.99", protocol_port=8080
            ),
            "Use protocol_port 80",
        ),
    ],
)
def test_octavia_refuses_what_xdpath_cannot_do(
    os_conn: Connection, create: Callable[[Connection], Any], words: str
) -> None:
    with pytest.raises(openstack.exceptions.HttpException) as raised:
        create(os_conn)
    # Octavia answers a provider's UnsupportedOptionError with 501 and the
    # provider's message.
    assert raised.value.status_code == 501
    body = raised.value.response.json() if raised.value.response is not None else {}
    assert words in body.get("faultstring", ""), body
    assert lb_status(os_conn)[0] == "ACTIVE"


def test_cascade_delete_leaves_nothing_on_the_balancers(
    os_conn: Connection, fleet: client.Fleet, bed: Bed
) -> None:
    """Deleted while lb2's xdpathd is down: Octavia forgets the load
    balancer at once, and the agent clears lb2 when it is back."""
    bed.stop_xdpathd("lb2")
    try:
        os_conn.load_balancer.delete_load_balancer(Lb.id, cascade=True)

        def gone() -> bool:
            try:
                status = os_conn.load_balancer.get_load_balancer(Lb.id).provisioning_status
            except openstack.exceptions.NotFoundException:
                return True
            return bool(status == "DELETED")

        wait_for("the load balancer gone", gone, 30)
        assert fleet.balancers[0].owners() == []
    finally:
        bed.start_xdpathd("lb2")
    wait_for("lb2 cleared by the agent", lambda: fleet.balancers[1].owners() == [], 30)
    for balancer in fleet.balancers:
        assert balancer.get_owner(mapping.owner_of(Lb.id)) is None
    for role in BALANCERS:
        assert json.loads(bed.xdpath(role, "--json", "lb", "vip", "list")) == []
        assert json.loads(bed.xdpath(role, "--json", "lb", "backend", "list")) == []
        assert json.loads(bed.xdpath(role, "--json", "ratelimit", "list")) == []
    assert bed.requests(2, timeout=1) in ([], ["", ""])
