"""A local media store's puts, batched across callbacks: the parts of the callbacks in flight
are written by one thread and made durable by another, each taking, once it is free, every
callback that came while it was busy.

A worker-thread round trip per callback (submit, a thread woken, the result handed back to the
loop, a turn at GroupSync's condition) is what this saves: two per batch instead (measured in
bench/results/2026-12-03-put-batches.md). Two stages, so that the next callbacks' writes go on
while a sync runs: with one thread doing both, writes waited for the sync before them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from connector.media import FilesystemMediaStore

Parts = Sequence[tuple[bytes, str]]  # (content, its sha256), as FilesystemMediaStore.put_all takes
Put = tuple[FilesystemMediaStore, Parts]
T = TypeVar("T")


class PutBatches:
    """`put_all` returns once `parts` are durable in `store`. A batch that fails (a write, the
    sync) fails every callback in it, each of which the provider retries (a 503). A batch holds
    at most `server.max_in_flight` callbacks."""

    def __init__(self) -> None:
        self._syncs = _Stage(_sync, "media-sync")
        self._writes = _Stage(_write, "media-write", then=self._syncs)

    async def put_all(self, store: FilesystemMediaStore, parts: Parts) -> None:
        if not parts:
            return  # nothing to write, nothing to wait for (a callback without inline parts)
        await self._writes.run((store, parts))

    def close(self) -> None:
        self._writes.close()
        self._syncs.close()


class _Stage(Generic[T]):
    """`run(item)` returns once `work` has run over a batch holding `item` (the first batch
    that starts after the call, on the stage's own thread, one batch at a time) and, if there
    is a stage `then`, that stage over it too: a batch done here goes there whole."""

    def __init__(
        self, work: Callable[[list[T]], None], name: str, then: _Stage[T] | None = None
    ) -> None:
        self._work, self._then = work, then
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._running = False
        self._closed = False

    async def run(self, item: T) -> None:
        future = asyncio.get_running_loop().create_future()
        self._take([(item, future)])
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
        items = [item for item, _ in batch]
        done = asyncio.get_running_loop().run_in_executor(self._thread, self._work, items)
        done.add_done_callback(functools.partial(self._finished, batch))

    def _finished(
        self, batch: list[tuple[T, asyncio.Future[None]]], done: asyncio.Future[None]
    ) -> None:
        self._running = False
        # Cancelled: closed before the batch started, so nothing of it was done.
        error = _stopped() if done.cancelled() else done.exception()
        if error is None and self._then is not None:
            self._then._take(batch)
        else:
            _settle(batch, error)
        if self._waiting:
            self._start()

    def _take(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        self._waiting += [(item, future) for item, future in batch if not future.done()]
        if self._waiting and not self._running:
            self._start()


def _settle(batch: list[tuple[T, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():  # cancelled: the callback stopped waiting
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _stopped() -> OSError:
    return OSError(errno.ECANCELED, "the media writer has stopped")


def _write(batch: list[Put]) -> None:
    for store, parts in batch:
        store.write(parts)


def _sync(batch: list[Put]) -> None:
    """One sync per store for the whole batch."""
    by_store: dict[FilesystemMediaStore, list[tuple[bytes, str]]] = {}
    for store, parts in batch:
        by_store.setdefault(store, []).extend(parts)
    for store, parts in by_store.items():
        store.sync(parts)
