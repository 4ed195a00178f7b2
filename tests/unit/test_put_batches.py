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
    """A store whose first put waits for `gate`, so that callbacks pile up behind it; every
    put's parts are recorded, and a put fails while `failing` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.puts: list[int] = []  # how many parts each put_all wrote
        self.failing = False

    def put_all(self, parts: Sequence[tuple[bytes, str]]) -> None:
        if not self.puts:
            self.gate.wait(5)
        self.puts.append(len(parts))
        if self.failing:
            raise OSError(28, "No space left on device")
        super().put_all(parts)


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
    assert store.puts == [1, len(PARTS) - 1]  # two puts, so two syncs, for six callbacks
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
    assert first is None
    assert isinstance(queued, OSError), queued
    assert store.puts == [1]


def test_a_callback_without_parts_waits_for_nothing(store: _Gated) -> None:
    batches = PutBatches()
    asyncio.run(batches.put_all(store, []))
    assert store.puts == [] and not store.root.exists()
    batches.close()
