"""A local media store's puts, batched across callbacks: the parts of every callback that comes
while a batch is being written wait for the next one, written and made durable by one sync on
one thread of their own.

A worker-thread round trip per callback (submit, a thread woken, the result handed back to the
loop, a turn at GroupSync's condition) is what this saves: one of each per batch instead.
Measured in bench/results/2026-12-03-put-batches.md.
"""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from connector.media import FilesystemMediaStore

Parts = Sequence[tuple[bytes, str]]  # (content, its sha256), as FilesystemMediaStore.put_all takes
_Waiting = tuple[FilesystemMediaStore, Parts, "asyncio.Future[None]"]


class PutBatches:
    """`put_all` returns once `parts` are durable in `store`, written in the first batch that
    starts after the call. One batch runs at a time: a batch that fails (a write, the sync)
    fails every callback in it, each of which the provider retries (a 503)."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="media-put")
        self._waiting: list[_Waiting] = []
        self._running = False
        self._closed = False

    async def put_all(self, store: FilesystemMediaStore, parts: Parts) -> None:
        if not parts:
            return  # nothing to write, nothing to wait for (a callback without inline parts)
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((store, parts, future))
        if not self._running:
            self._start()
        # Cancelled (the callback's deadline): the batch goes on, its result is not wanted.
        await future

    def close(self) -> None:
        self._closed = True
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        if self._closed:
            _settle(batch, _stopped())
            return
        self._running = True
        done = asyncio.get_running_loop().run_in_executor(self._thread, _put, batch)
        done.add_done_callback(functools.partial(self._finished, batch))

    def _finished(self, batch: list[_Waiting], done: asyncio.Future[None]) -> None:
        self._running = False
        # Cancelled: closed before the batch started, so nothing of it is durable.
        _settle(batch, _stopped() if done.cancelled() else done.exception())
        if self._waiting:
            self._start()


def _settle(batch: list[_Waiting], error: BaseException | None) -> None:
    for _, _, future in batch:
        if future.done():  # cancelled: the callback stopped waiting
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _stopped() -> OSError:
    return OSError(errno.ECANCELED, "the media writer has stopped")


def _put(batch: list[_Waiting]) -> None:
    by_store: dict[FilesystemMediaStore, list[tuple[bytes, str]]] = {}
    for store, parts, _ in batch:
        by_store.setdefault(store, []).extend(parts)
    for store, parts in by_store.items():
        store.put_all(parts)
