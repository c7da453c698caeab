"""Services the tests start: each in a process group of its own, told to die
with the test process, stopped with SIGTERM and then SIGKILL."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Looked up here, not in the child: between fork and exec only the call runs.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test process dies
    # (even by SIGKILL), the kernel sends this service SIGTERM.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def check_output(argv: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``argv`` to completion; its output, or an error that shows it."""
    done = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> Service:
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
                # Only prctl() runs between fork and exec: no lock of the
                # parent's threads is taken.
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        return cls(name, process, log)

    def check_running(self, other_log: Path | None = None) -> None:
        """Raise, with the end of its log, if the service has exited."""
        code = self.process.poll()
        if code is not None:
            logs = tail(self.log)
            if other_log is not None:
                logs += "\n" + tail(other_log)
            raise RuntimeError(f"{self.name} exited with {code}:\n{logs}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the service, SIGKILL to its process group (the service
        and whatever it forked) if it has not exited by ``timeout``, and to
        whatever of the group outlived it.

        SIGTERM goes to the service alone, not to its group: the driver agent
        stops its workers itself by setting a multiprocessing Event, and that
        Event's set() waits for every process sleeping on it to wake up, so a
        worker killed first would leave the agent hanging.
        """
        pgid = self.process.pid  # start_new_session: the group is the service's own
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                self.process.wait()
        # While the group has members its id cannot be reused, so this
        # reaches no process but ours.
        if _group_has_members(pgid):
            _signal_group(pgid, signal.SIGKILL)


def _group_has_members(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp.
        if int(fields[2]) == pgid:
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
