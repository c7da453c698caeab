"""The OpenStack test environment of xdpath's Octavia provider driver and
Neutron driver and agent.

`OctaviaEnv` starts a real Octavia (MariaDB, octavia-api, octavia-driver-agent
with the xdpath provider) in a temporary directory and stops it again; see
openstack/README.md and openstack/tests/conftest.py for its use from pytest.
"""

from testenv.env import DEFAULT_PROJECT_ID, DEFAULT_PROVIDERS, OctaviaEnv
from testenv.mariadb import MariaDB
from testenv.neutron import NeutronEnv

__all__ = ["DEFAULT_PROJECT_ID", "DEFAULT_PROVIDERS", "MariaDB", "NeutronEnv", "OctaviaEnv"]
