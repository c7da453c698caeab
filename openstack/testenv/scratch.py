"""A test bed in a scratch directory of its own, removed with the bed."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar


class Destroyable(Protocol):
    def destroy(self) -> None: ...


BedT = TypeVar("BedT", bound=Destroyable)


@contextlib.contextmanager
def scratch_bed(prefix: str, build: Callable[[Path], BedT]) -> Iterator[BedT]:
    """``build(workdir)`` in a new directory under /dev/shm; the bed is
    destroyed and the directory removed afterwards (also when the build
    fails part way, as far as it got)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/dev/shm"))
    try:
        bed = build(workdir)
        try:
            yield bed
        finally:
            bed.destroy()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
