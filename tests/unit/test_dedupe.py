"""The dedupe window, on a fake clock: expiry, eviction, claim/settle, rebuilding from Kafka."""

from __future__ import annotations

import asyncio
import gc

import pytest

from connector.dedupe import Window


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def window(seconds: float = 60, max_entries: int = 100) -> tuple[Window, Clock]:
    clock = Clock()
    return Window(seconds, max_entries, clock), clock


def test_an_added_event_is_seen_until_the_window_passes() -> None:
    w, clock = window(seconds=60)
    assert not w.seen("a")
    w.add("a")
    assert w.seen("a")
    clock.now += 60
    assert w.seen("a")  # exactly at the edge: still inside
    clock.now += 0.001
    assert not w.seen("a")
    assert len(w) == 0


def test_expiry_is_per_event() -> None:
    w, clock = window(seconds=10)
    w.add("old")
    clock.now += 6
    w.add("new")
    clock.now += 6
    assert not w.seen("old")
    assert w.seen("new")
    assert len(w) == 1


def test_adding_again_refreshes_the_time() -> None:
    w, clock = window(seconds=10)
    w.add("a")
    w.add("b")
    clock.now += 8
    w.add("a")
    clock.now += 8
    assert w.seen("a")
    assert not w.seen("b")


def test_max_entries_evicts_the_oldest() -> None:
    w, clock = window(seconds=60, max_entries=3)
    for event_id in "abcd":
        w.add(event_id)
        clock.now += 1
    assert len(w) == 3
    assert not w.seen("a")
    assert all(w.seen(e) for e in "bcd")
    w.add("b")  # refreshed: now the newest, so "c" goes next
    w.add("e")
    assert [e for e in "abcde" if w.seen(e)] == ["b", "d", "e"]


def test_a_zero_window_remembers_nothing() -> None:
    w, _ = window(seconds=0)
    w.add("a")
    w.remember([("b", 0.0)])
    assert not w.seen("a")
    assert not w.seen("b")
    assert len(w) == 0


def test_remember_loads_ages_and_drops_what_is_outside_the_window() -> None:
    w, clock = window(seconds=60)
    w.remember([("recent", 5.0), ("older", 50.0), ("expired", 60.0), ("ancient", 3600.0)])
    assert len(w) == 2
    assert w.seen("recent")
    assert w.seen("older")
    assert not w.seen("expired")
    assert not w.seen("ancient")
    # Ages count: "older" was published 50 s ago, so it leaves the window 10 s from now.
    clock.now += 10.5
    assert not w.seen("older")
    assert w.seen("recent")
    clock.now += 45
    assert not w.seen("recent")


def test_remember_keeps_expiry_order_whatever_the_input_order() -> None:
    w, clock = window(seconds=60)
    # Read back from several topics/partitions: ages arrive in any order.
    w.remember([("b", 10.0), ("a", 40.0), ("c", 1.0)])
    clock.now += 21  # "a" (40 s old) leaves; the others stay
    assert [e for e in "abc" if w.seen(e)] == ["b", "c"]
    clock.now += 30  # "b" (now 61 s old) leaves
    assert [e for e in "abc" if w.seen(e)] == ["c"]


def test_remember_respects_max_entries_keeping_the_newest() -> None:
    w, _ = window(seconds=60, max_entries=2)
    w.remember([("newest", 1.0), ("oldest", 30.0), ("middle", 10.0)])
    assert [e for e in ("oldest", "middle", "newest") if w.seen(e)] == ["middle", "newest"]


def test_claimed_events_are_pending_until_settled_successfully() -> None:
    async def scenario() -> None:
        w, _ = window()
        w.claim(["a", "b"])
        pending = w.pending("a")
        assert pending is not None and not pending.done()
        assert w.pending("b") is not None
        assert w.pending("c") is None
        assert not w.seen("a")  # not published yet

        w.settle(["a", "b"], None)
        assert pending.done() and pending.result() is None
        assert w.pending("a") is None and w.pending("b") is None
        assert w.seen("a") and w.seen("b")

    asyncio.run(scenario())


def test_a_failed_settle_wakes_waiters_with_the_error_and_remembers_nothing() -> None:
    async def scenario() -> None:
        w, _ = window()
        w.claim(["a"])
        pending = w.pending("a")
        assert pending is not None
        waiter = asyncio.ensure_future(pending)
        await asyncio.sleep(0)

        error = RuntimeError("delivery failed")
        w.settle(["a"], error)
        with pytest.raises(RuntimeError, match="delivery failed"):
            await waiter
        assert w.pending("a") is None
        assert not w.seen("a")  # a retry must publish it again

        # ...and it can: a new claim works and succeeds this time.
        w.claim(["a"])
        w.settle(["a"], None)
        assert w.seen("a")

    asyncio.run(scenario())


def test_a_failed_settle_nobody_waits_for_leaves_no_unretrieved_exception() -> None:
    # An asyncio future whose exception is never retrieved logs "exception was never
    # retrieved" when collected; settle marks it retrieved (waiters may all have left).
    async def scenario() -> list[dict[str, object]]:
        errors: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        w, _ = window()
        w.claim(["a"])
        w.settle(["a"], RuntimeError("lost"))
        gc.collect()
        await asyncio.sleep(0)
        return errors

    assert asyncio.run(scenario()) == []


def test_settling_an_unclaimed_event_records_it() -> None:
    # A late delivery may settle after the request gave up; the outcome is still recorded.
    async def scenario() -> None:
        w, _ = window()
        w.settle(["late"], None)
        assert w.seen("late")
        w.settle(["failed-late"], RuntimeError("x"))
        assert not w.seen("failed-late")

    asyncio.run(scenario())


def test_settle_after_a_waiter_gave_up_does_not_raise() -> None:
    async def scenario() -> None:
        w, _ = window()
        w.claim(["a"])
        pending = w.pending("a")
        assert pending is not None
        pending.cancel()  # e.g. the only waiter was cancelled with its request
        w.settle(["a"], None)
        assert w.seen("a")
        assert w.pending("a") is None

    asyncio.run(scenario())


def test_expired_event_can_be_published_again() -> None:
    w, clock = window(seconds=5)
    w.add("a")
    clock.now += 6
    assert not w.seen("a")
    w.add("a")
    assert w.seen("a")
    assert len(w) == 1


def test_the_window_keeps_the_first_copy_s_digest() -> None:
    w, _ = window()

    async def run() -> None:
        w.claim(["a", "b"])
        w.settle(["a", "b"], None, {"a": 11, "b": 22})

    asyncio.run(run())
    assert not w.differs("a", 11)
    assert w.differs("a", 22)
    assert w.differs("b", 11)
    w.remember([("c", 1.0)])  # read back from Kafka: content unknown
    assert w.seen("c") and not w.differs("c", 11)
    assert not w.differs("never", 11)
