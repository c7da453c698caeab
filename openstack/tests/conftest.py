"""Fixtures: one Octavia for the whole session (it takes seconds to start),
stopped and removed at the end however the tests went; its logs are printed
when a test failed."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from openstack.connection import Connection

from testenv import OctaviaEnv


@pytest.fixture(scope="session")
def octavia_env(request: pytest.FixtureRequest) -> Iterator[OctaviaEnv]:
    env = OctaviaEnv()
    env.start()
    try:
        yield env
    finally:
        if request.session.testsfailed:
            print(f"\n{env.logs()}", file=sys.stderr)
        env.stop()


@pytest.fixture(scope="session")
def conn(octavia_env: OctaviaEnv) -> Connection:
    connection: Connection = octavia_env.connection()
    return connection
