"""Group commit for the filesystem store: one syncfs(2) makes the writes of every callback
waiting on it durable at once.

An fsync per file and per directory forces a journal commit each; the parts of the callbacks in
flight share one instead: 2.28 -> 2.02 ms of CPU per multipart callback at saturation (same run,
bench/results/2026-12-02-steps-s4.md).

syncfs reports writeback errors of its filesystem since Linux 5.8 (before, it said nothing, as
sync(2) does), and only local filesystems write everything back for it: FUSE does not ask its
daemon, network filesystems and overlays differ. So it is used only where both hold
(`syncfs_covers`); elsewhere the store fsyncs each file and directory.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)

# Filesystems whose syncfs writes back and waits for all their dirty data, and whose writeback
# errors it reports (errseq since 5.8).
SYNCFS_FILESYSTEMS = frozenset({"ext4", "xfs", "btrfs"})


def syncfs_covers(path: Path) -> bool:
    """Whether syncfs(2) on `path` (it must exist) makes its writes durable and reports their
    errors: Linux 5.8 or later, `path` on one of SYNCFS_FILESYSTEMS."""
    if platform.system() != "Linux" or not hasattr(_libc, "syncfs"):
        return False
    try:
        major, minor = (int(n) for n in platform.release().split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8) and filesystem_of(path) in SYNCFS_FILESYSTEMS


def filesystem_of(path: Path) -> str | None:
    """The type of the filesystem `path` is on, from the longest mount point above it in
    /proc/self/mountinfo (fields: mount point 5th, type after the ' - ' separator)."""
    target = os.path.realpath(path)
    found, found_type = "", None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        point = parts[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(found):
            found, found_type = point, rest.split()[0]
    return found_type


def syncfs(fd: int) -> None:
    """Write back everything dirty on the filesystem holding `fd` and wait for it (ctypes
    releases the GIL for the call); raises OSError for a writeback error since `fd` last
    reported one."""
    if _libc.syncfs(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class GroupSync:
    """`wait()` returns once a sync that started after the call has succeeded.

    Syncs run one at a time, on the thread of one of the callers: whoever calls while one is
    running waits for it to end, and the next sync then covers all of them. A failed sync fails
    every caller it covered, each with its own OSError, and the callers of the next one too:
    their writes overlapped the failed sync, whose error the next sync no longer reports.
    """

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._lock = threading.Condition()
        self._next = 0  # the number of the next sync to start
        self._done = 0  # syncs numbered below this have ended
        self._running = False
        self._last_error: BaseException | None = None  # of the sync that ended last
        self._waiting: dict[int, int] = {}  # callers per sync number, until they return
        self._failed: dict[int, BaseException] = {}  # kept while callers of that sync remain

    def wait(self) -> None:
        with self._lock:
            # Sync number `ticket` has not started yet: it is the first to cover this caller.
            ticket = self._next
            self._waiting[ticket] = self._waiting.get(ticket, 0) + 1
            try:
                while self._done <= ticket:
                    if self._running:
                        self._lock.wait()
                    else:
                        self._run()  # every sync before `ticket` has ended: this one is it
                error = self._failed.get(ticket)
            finally:
                self._waiting[ticket] -= 1
                if not self._waiting[ticket]:
                    del self._waiting[ticket]
                    self._failed.pop(ticket, None)
        if error is not None:
            if isinstance(error, OSError):
                raise OSError(error.errno, error.strerror)
            raise OSError(errno.EIO, f"the shared sync failed: {error!r}")

    def _run(self) -> None:
        """Sync number `_next`, the lock released meanwhile (it is held on entry and exit)."""
        number, self._next, self._running = self._next, self._next + 1, True
        self._lock.release()
        error: BaseException | None = None
        try:
            self._sync()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._lock.acquire()
            self._running, self._done = False, number + 1
            failure, self._last_error = error or self._last_error, error
            if failure is not None:
                self._failed[number] = failure
            self._lock.notify_all()
