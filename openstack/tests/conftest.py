"""Fixtures: one Octavia and one Neutron for the whole session (each takes
seconds to start, and only when a test asks for it),
stopped and removed at the end however the tests went; its logs are printed
when a test failed."""

from __future__ import annotations

import signal
import threading
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


class _Early:
    """Neutron started in a thread as soon as the tests are collected (if
    any test wants it), so that its ~25 s start (mostly the migrations)
    overlaps the Octavia tests that run first.

    The thread lives until the services are stopped: they are started with
    PR_SET_PDEATHSIG, which the kernel fires when the *thread* that forked
    them ends, not the process."""

    env: NeutronEnv | None = None
    thread: threading.Thread | None = None
    ready = threading.Event()
    release = threading.Event()
    error: BaseException | None = None

    @classmethod
    def start(cls) -> None:
        env = cls.env = NeutronEnv()

        def run() -> None:
            try:
                env.start()
            except BaseException as error:
                cls.error = error
            finally:
                cls.ready.set()
            cls.release.wait()

        cls.thread = threading.Thread(target=run, name="neutron-start", daemon=True)
        cls.thread.start()

    @classmethod
    def stop(cls) -> None:
        if cls.thread is None:
            return
        cls.ready.wait()
        if cls.env is not None:
            cls.env.stop()
            cls.env = None
        cls.release.set()
        cls.thread.join()
        cls.thread = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if any("neutron_env" in getattr(item, "fixturenames", ()) for item in items):
        _Early.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Also when no test got as far as asking for it (-x, ^C).
    _Early.stop()


@pytest.fixture(scope="session")
def neutron_env(request: pytest.FixtureRequest) -> Iterator[NeutronEnv]:
    signal.signal(signal.SIGTERM, _interrupt)
    if _Early.thread is None:
        _Early.start()
    _Early.ready.wait()
    env = _Early.env
    assert env is not None
    if _Early.error is not None:
        raise _Early.error
    try:
        yield env
    finally:
        if request.session.testsfailed:
            _logs.append(env.logs())
        _Early.stop()
