"""Group commit for the filesystem store: one syncfs(2) makes the writes of every callback
waiting on it durable at once.

An fsync per file and per directory forces a journal commit each; the parts of the callbacks in
flight share one instead. Measured on this disk with 16 writer threads, two 200 KB parts per
callback: 1.42-1.76 ms of the process's CPU per callback with per-file fsyncs, 0.99-1.16 with a
shared syncfs, and 10-22 % less CPU over the whole machine (kernel threads included).

syncfs reports writeback errors of its filesystem since Linux 5.8; before that it said nothing,
as sync(2) does, which is why it is only used where it reports them (`syncfs_reports_errors`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)


def syncfs_reports_errors() -> bool:
    """Whether this kernel has syncfs(2) and it reports writeback errors (Linux >= 5.8)."""
    if platform.system() != "Linux" or not hasattr(_libc, "syncfs"):
        return False
    version = platform.release().split("-")[0].split(".")
    try:
        return (int(version[0]), int(version[1])) >= (5, 8)
    except (IndexError, ValueError):
        return False


def syncfs(fd: int) -> None:
    """Write back everything dirty on the filesystem holding `fd` and wait for it (ctypes
    releases the GIL for the call)."""
    if _libc.syncfs(fd) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


class GroupSync:
    """`wait()` returns once a sync that started after the call has succeeded.

    Syncs run one at a time, on the thread of one of the callers: whoever calls while one is
    running waits for it to end, and the next sync then covers all of them. A failed sync fails
    every caller it covered, each with its own OSError.
    """

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._lock = threading.Condition()
        self._next = 0  # the number of the next sync to start
        self._done = 0  # syncs numbered below this have ended
        self._running = False
        self._waiting: dict[int, int] = {}  # callers per sync number, until they return
        self._failed: dict[int, OSError] = {}  # kept while callers of that sync remain

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
            raise OSError(error.errno, error.strerror)

    def _run(self) -> None:
        """Sync number `_next`, the lock released meanwhile (it is held on entry and exit)."""
        number, self._next, self._running = self._next, self._next + 1, True
        self._lock.release()
        error = None
        try:
            self._sync()
        except OSError as exc:
            error = exc
        finally:
            self._lock.acquire()
            self._running, self._done = False, number + 1
            if error is not None:
                self._failed[number] = error
            self._lock.notify_all()
