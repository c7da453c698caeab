"""Fixtures: one Octavia and one Neutron for the whole session (each takes
seconds to start, and only when a test asks for it),
stopped and removed at the end however the tests went; its logs are printed
when a test failed."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from openstack.connection import Connection

from testenv import NeutronEnv, OctaviaEnv

# The services' logs when a test failed, printed in pytest's summary (output of
# the session fixture's teardown would be captured and dropped).
_logs: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for logs in _logs:
        terminalreporter.section("Octavia's logs (a test failed)")
        terminalreporter.write_line(logs)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def octavia_env(request: pytest.FixtureRequest) -> Iterator[OctaviaEnv]:
    # SIGTERM (a CI time-out, kill) ends the run like ^C does, through the
    # fixtures' teardown, so that the services are stopped and the directory
    # removed.
    signal.signal(signal.SIGTERM, _interrupt)
    env = OctaviaEnv()
    env.start()
    try:
        yield env
    finally:
        if request.session.testsfailed:
            _logs.append(env.logs())
        env.stop()


@pytest.fixture(scope="session")
def conn(octavia_env: OctaviaEnv) -> Connection:
    connection: Connection = octavia_env.connection()
    return connection


@pytest.fixture(scope="session")
def neutron_env(request: pytest.FixtureRequest) -> Iterator[NeutronEnv]:
    # Started when first asked for, after the Octavia tests (started in a
    # thread during them instead, it slowed them on 2 cores about as much
    # as it saved, and a thread that forks the services must outlive them:
    # PR_SET_PDEATHSIG fires when the forking thread ends).
    signal.signal(signal.SIGTERM, _interrupt)
    env = NeutronEnv()
    env.start()
    try:
        yield env
    finally:
        if request.session.testsfailed:
            _logs.append(env.logs())
        env.stop()
