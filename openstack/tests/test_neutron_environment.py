"""The Neutron test environment, and what the xdpath mechanism and QoS
drivers make Neutron accept or refuse (through Neutron's API only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import openstack.exceptions
import pytest
from openstack.connection import Connection

from neutron_xdpath.agent import Agent
from neutron_xdpath.config import load
from testenv import NeutronEnv
from testenv.env import _venv_bin


@pytest.fixture(scope="module")
def conn(neutron_env: NeutronEnv) -> Connection:
    connection: Connection = neutron_env.connection()
    return connection


def test_the_xdpath_drivers_are_loaded(neutron_env: NeutronEnv, conn: Connection) -> None:
    types = sorted(rule_type.type for rule_type in conn.network.qos_rule_types())
    assert types == ["bandwidth_limit", "packet_rate_limit"]
    log = neutron_env.api_log.read_text()
    # xdpath, and Neutron's test driver that binds VM ports for FWaaS.
    assert "Registered mechanism drivers: ['xdpath', 'test']" in log
    assert "Firewall v2 Service Plugin using Service Driver: xdpath" in log
    assert neutron_env.migrations_took > 0


def test_an_ingress_limit_is_accepted_and_an_egress_one_refused_with_xdpaths_reason(
    neutron_env: NeutronEnv, conn: Connection
) -> None:
    project = neutron_env.project_id
    net = conn.network.create_network(project_id=project, name="refusals")
    conn.network.create_subnet(
        project_id=project, network_id=net.id, cidr="10.9.0.0/24", ip_version=4
    )
    policy = conn.network.create_qos_policy(project_id=project, name="p")
    port = conn.network.create_port(project_id=project, network_id=net.id, qos_policy_id=policy.id)
    try:
        conn.network.create_qos_packet_rate_limit_rule(policy, max_kpps=3, direction="ingress")
        conn.network.create_qos_bandwidth_limit_rule(policy, max_kbps=1000, direction="ingress")
        with pytest.raises(openstack.exceptions.BadRequestException) as refused:
            conn.network.create_qos_packet_rate_limit_rule(policy, max_kpps=3, direction="egress")
        assert "xdpath cannot enforce egress packet_rate_limit rules" in str(refused.value)
        with pytest.raises(openstack.exceptions.HttpException):
            conn.network.create_qos_dscp_marking_rule(policy, dscp_mark=8)
    finally:
        conn.network.delete_port(port)
        conn.network.delete_qos_policy(policy)
        conn.network.delete_network(net)


def test_the_openstack_cli_reads_the_policy(neutron_env: NeutronEnv, conn: Connection) -> None:
    policy = conn.network.create_qos_policy(project_id=neutron_env.project_id, name="cli")
    try:
        conn.network.create_qos_packet_rate_limit_rule(policy, max_kpps=4, direction="ingress")
        done = subprocess.run(
            [str(_venv_bin() / "openstack"), "network", "qos", "policy", "show", policy.id,
             "-f", "json"],
            env=neutron_env.cli_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert '"max_kpps": 4' in done.stdout, done.stdout
    finally:
        conn.network.delete_qos_policy(policy)


def test_the_compute_role_reads_ports_with_their_own_or_their_networks_policy(
    neutron_env: NeutronEnv, conn: Connection, tmp_path: Path
) -> None:
    project = neutron_env.project_id
    network_policy = conn.network.create_qos_policy(project_id=project, name="net")
    conn.network.create_qos_packet_rate_limit_rule(network_policy, max_kpps=2, direction="ingress")
    port_policy = conn.network.create_qos_policy(project_id=project, name="port")
    conn.network.create_qos_bandwidth_limit_rule(port_policy, max_kbps=800, direction="ingress")
    net = conn.network.create_network(
        project_id=project, name="compute", qos_policy_id=network_policy.id
    )
    conn.network.create_subnet(
        project_id=project, network_id=net.id, cidr="10.8.0.0/24", ip_version=4
    )
    inherits = conn.network.create_port(project_id=project, network_id=net.id)
    own = conn.network.create_port(
        project_id=project, network_id=net.id, qos_policy_id=port_policy.id
    )
    router_port = conn.network.create_port(
        project_id=project, network_id=net.id, device_owner="network:router_interface"
    )
    stateless = conn.network.create_security_group(
        project_id=project, name="stateless", stateful=False
    )
    conn.network.update_port(inherits, security_group_ids=[stateless.id])
    ini = tmp_path / "agent.ini"
    ini.write_text(
        f"[neutron]\nauth_type = none\nendpoint = {neutron_env.api_url}\n"
        f"project_id = {project}\n[xdpathd]\nendpoint = unix:{tmp_path}/none.sock\n"
        "[agent]\nrole = compute\n"
    )
    try:
        plan = Agent(load(ini)).desired()
        mine = {k: v for k, v in plan.documents.items() if k.startswith("neutron-port-")}
        address = inherits.fixed_ips[0]["ip_address"]
        # A tenant network is vxlan (ML2's tenant_network_types): its
        # ports' rules and limits match the inner headers of its VNI.
        vni = conn.network.get_network(net.id).provider_segmentation_id
        assert conn.network.get_network(net.id).provider_network_type == "vxlan"
        assert 1000 <= vni <= 1999, vni
        assert mine[f"neutron-port-{inherits.id}"] == {
            "limits": [
                {"per": "dst", "scope": f"{address}/32", "pps": "2000", "vni": str(vni),
                 "labels": {"port_id": inherits.id, "qos_policy_id": network_policy.id}}
            ],
            # A new group allows no ingress: what Neutron's firewall lets in
            # to every port (DHCP replies), then the drop of the rest.
            "rules": [{"dst": f"{address}/32", "action": "admit", "proto": "udp", "dport": "68",
                       "vni": str(vni), "labels": {"port_id": inherits.id}},
                      {"dst": f"{address}/32", "action": "drop", "vni": str(vni),
                       "labels": {"port_id": inherits.id}}],
        }  # fmt: skip
        [limit] = mine[f"neutron-port-{own.id}"]["limits"]
        assert limit["bps"] == "100000"
        assert f"neutron-port-{router_port.id}" not in mine
        assert plan.policies[f"neutron-port-{own.id}"] == port_policy.id
        [default] = set(own.security_group_ids)
        notes = plan.not_enforced
        assert any(
            note.startswith(f"port {own.id}: security group(s) {default} stateful: not handled")
            for note in notes
        ), notes
    finally:
        for port in (inherits, own, router_port):
            conn.network.delete_port(port)
        conn.network.delete_network(net)
        conn.network.delete_security_group(stateless)
        conn.network.delete_qos_policy(network_policy)
        conn.network.delete_qos_policy(port_policy)
