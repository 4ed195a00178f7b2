"""Group commit: every caller returns after a sync that started after its call, syncs shared."""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from connector.group_sync import GroupSync, filesystem_of, syncfs, syncfs_covers


class _Recorded:
    """A sync that takes `seconds` and records when each run started and ended; the runs
    numbered in `failing` raise EIO."""

    def __init__(self, seconds: float, failing: frozenset[int] = frozenset()) -> None:
        self.seconds = seconds
        self.failing = failing
        self.runs: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __call__(self) -> None:
        started = time.monotonic()
        time.sleep(self.seconds)
        with self._lock:
            number = len(self.runs)
            self.runs.append((started, time.monotonic()))
        if number in self.failing:
            raise OSError(errno.EIO, "Input/output error")


def _callers(group: GroupSync, count: int) -> list[tuple[float, float, OSError | None]]:
    """`count` threads calling `wait()` at once: when each called, returned, and its error."""
    barrier = threading.Barrier(count)

    def call() -> tuple[float, float, OSError | None]:
        barrier.wait()
        called = time.monotonic()
        try:
            group.wait()
        except OSError as exc:
            return called, time.monotonic(), exc
        return called, time.monotonic(), None

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def test_each_caller_returns_after_a_sync_that_started_after_its_call() -> None:
    sync = _Recorded(0.05)
    calls = _callers(GroupSync(sync), 12)
    for called, returned, error in calls:
        assert error is None
        assert any(called <= start and end <= returned for start, end in sync.runs)
    # The first sync covers the first caller (or a few); all the rest wait and share the next.
    assert 1 <= len(sync.runs) <= 3
    # One at a time: each run ends before the next starts.
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(sync.runs))


def test_a_failed_sync_fails_its_callers_and_the_next_syncs_then_no_more() -> None:
    # The callers of the next sync wrote while the failed one ran: the error it reported is not
    # reported again, so they fail too.
    sync = _Recorded(0.2, failing=frozenset({0}))
    group = GroupSync(sync)
    calls = _callers(group, 6)
    errors = [error for _c, _r, error in calls]
    assert all(e is not None and e.errno == errno.EIO for e in errors), errors
    assert len({id(e) for e in errors}) == len(errors)  # one exception each, not one shared
    assert len(sync.runs) == 2  # the failed one, and the next (its callers failed with it)
    group.wait()  # the one after succeeds
    assert len(sync.runs) == 3


def test_a_sync_raising_anything_else_fails_its_callers_too() -> None:
    started, runs = threading.Event(), []

    def broken_once() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            started.set()
            time.sleep(0.2)
            raise RuntimeError("not an OSError")

    group = GroupSync(broken_once)
    with ThreadPoolExecutor(4) as pool:
        runner = pool.submit(group.wait)
        started.wait()
        during = [pool.submit(group.wait) for _ in range(3)]  # they wrote while it ran
        with pytest.raises(RuntimeError):
            runner.result()
        for waiter in during:
            with pytest.raises(OSError, match="the shared sync failed"):
                waiter.result()
    group.wait()


def test_the_filesystem_of_a_path_is_its_innermost_mounts() -> None:
    assert filesystem_of(Path("/proc/self")) == "proc"
    assert not syncfs_covers(Path("/proc"))  # not a filesystem syncfs is trusted on


@pytest.mark.skipif(not syncfs_covers(Path(tempfile.gettempdir())), reason="ext4/xfs/btrfs, 5.8+")
def test_syncfs_syncs_a_real_filesystem_and_reports_errors(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as raised:
        syncfs(fd)  # closed now
    assert raised.value.errno == errno.EBADF
