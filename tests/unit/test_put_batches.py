"""A local store's puts, batched across callbacks (connector/put_batches.py), on a real store."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from connector.media import FilesystemMediaStore
from connector.put_batches import PutBatches

PARTS = [[(bytes([i]) * 1000, hashlib.sha256(bytes([i]) * 1000).hexdigest())] for i in range(6)]


class _Gated(FilesystemMediaStore):
    """A store whose first write waits for `gate` and first sync for `sync_gate`, so that
    callbacks pile up behind them; the parts of each write and sync are counted, and writes
    fail while `failing` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate, self.sync_gate = threading.Event(), threading.Event()
        self.sync_gate.set()
        self.writes: list[int] = []
        self.syncs: list[int] = []
        self.failing = False

    def write(self, parts: Sequence[tuple[bytes, str]]) -> None:
        if not self.writes:
            self.gate.wait(5)
        self.writes.append(len(parts))
        if self.failing:
            raise OSError(28, "No space left on device")
        super().write(parts)

    def sync(self, parts: Sequence[tuple[bytes, str]]) -> None:
        if not self.syncs:
            self.sync_gate.wait(5)
        self.syncs.append(len(parts))
        super().sync(parts)


@pytest.fixture
def store(tmp_path: Path) -> _Gated:
    return _Gated(tmp_path / "media")


async def _put_while_the_first_waits(batches: PutBatches, store: _Gated) -> list[object]:
    """The first callback's put, held at the gate; the rest queued behind it; then all."""
    first = asyncio.ensure_future(batches.put_all(store, PARTS[0]))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(batches.put_all(store, p)) for p in PARTS[1:]]
    await asyncio.sleep(0.05)
    store.gate.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_callbacks_that_wait_for_a_batch_share_the_next(store: _Gated) -> None:
    batches = PutBatches()
    results = asyncio.run(_put_while_the_first_waits(batches, store))
    assert results == [None] * len(PARTS)
    assert store.syncs == [1, len(PARTS) - 1]  # two syncs for six callbacks
    for [(content, digest)] in PARTS:
        assert (store.root / digest[:2] / digest).read_bytes() == content
    batches.close()


def test_a_failed_batch_fails_each_of_its_callbacks_and_the_next_batch_runs(
    store: _Gated,
) -> None:
    batches = PutBatches()
    store.failing = True
    results = asyncio.run(_put_while_the_first_waits(batches, store))
    assert all(isinstance(r, OSError) and r.errno == 28 for r in results)
    store.failing = False
    asyncio.run(batches.put_all(store, PARTS[0]))
    assert (store.root / PARTS[0][0][1][:2] / PARTS[0][0][1]).exists()
    batches.close()


def test_a_callback_that_stops_waiting_leaves_the_others_served(store: _Gated) -> None:
    batches = PutBatches()

    async def run() -> list[object]:
        first = asyncio.ensure_future(batches.put_all(store, PARTS[0]))
        await asyncio.sleep(0.05)
        late = [asyncio.ensure_future(batches.put_all(store, p)) for p in PARTS[1:3]]
        await asyncio.sleep(0)
        late[0].cancel()  # its deadline passed
        store.gate.set()
        return await asyncio.gather(first, *late, return_exceptions=True)

    first, cancelled, served = asyncio.run(run())
    assert first is None and served is None
    assert isinstance(cancelled, asyncio.CancelledError)
    batches.close()


def test_callbacks_waiting_when_it_closes_fail_and_are_not_told_durable(store: _Gated) -> None:
    batches = PutBatches()

    async def run() -> list[object]:
        first = asyncio.ensure_future(batches.put_all(store, PARTS[0]))
        await asyncio.sleep(0.05)  # the first batch holds the one thread at the gate
        queued = asyncio.ensure_future(batches.put_all(store, PARTS[1]))
        await asyncio.sleep(0)
        batches.close()  # the queued batch, not started, is cancelled
        store.gate.set()
        return await asyncio.gather(first, queued, return_exceptions=True)

    first, queued = asyncio.run(run())
    # The first was written but closed before its sync; the queued one was not written.
    assert isinstance(first, OSError) and isinstance(queued, OSError), (first, queued)
    assert store.writes == [1] and store.syncs == []


def test_the_next_callbacks_are_written_while_a_sync_runs(store: _Gated) -> None:
    store.gate.set()
    store.sync_gate.clear()
    batches = PutBatches()

    async def run() -> None:
        first = asyncio.ensure_future(batches.put_all(store, PARTS[0]))
        await asyncio.sleep(0.05)  # written, its sync held
        second = asyncio.ensure_future(batches.put_all(store, PARTS[1]))
        await asyncio.sleep(0.05)
        assert store.writes == [1, 1] and store.syncs == []  # written meanwhile
        assert not first.done() and not second.done()
        store.sync_gate.set()
        await asyncio.gather(first, second)

    asyncio.run(run())
    assert store.syncs == [1, 1]
    batches.close()


def test_a_callback_without_parts_waits_for_nothing(store: _Gated) -> None:
    batches = PutBatches()
    asyncio.run(batches.put_all(store, []))
    assert store.writes == store.syncs == [] and not store.root.exists()
    batches.close()
