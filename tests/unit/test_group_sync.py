"""Group commit: every caller returns after a sync that started after its call, syncs shared."""

from __future__ import annotations

import errno
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from connector.group_sync import GroupSync, syncfs, syncfs_reports_errors


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


def test_a_failed_sync_fails_every_caller_it_covered_and_no_later_one() -> None:
    sync = _Recorded(0.05, failing=frozenset({0}))
    group = GroupSync(sync)
    calls = _callers(group, 6)
    failed = [error for _c, _r, error in calls if error is not None]
    assert failed, "the first sync's callers see its error"
    assert all(e.errno == errno.EIO for e in failed)
    assert len({id(e) for e in failed}) == len(failed)  # one exception each, not one shared
    group.wait()  # a later sync succeeds
    assert len(sync.runs) >= 2


@pytest.mark.skipif(not syncfs_reports_errors(), reason="syncfs reports errors from Linux 5.8")
def test_syncfs_syncs_a_real_filesystem_and_reports_errors(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as raised:
        syncfs(fd)  # closed now
    assert raised.value.errno == errno.EBADF
