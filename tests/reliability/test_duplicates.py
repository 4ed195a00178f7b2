"""Duplicate storms: one callback sent many times, concurrently, in sequence and across a restart
of the connector, yields one record per event id, and every copy is answered like the first."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable

import httpx
import orjson
import pytest

from connector.config import Config
from tests.helpers import payload
from tests.live import Record, running
from tests.reliability.conftest import bandwidth_callback, bandwidth_event_ids, metric

pytestmark = pytest.mark.integration

CONCURRENT = 50
SEQUENTIAL = 20
AFTER_RESTART = 20


def unique_delivered_and_failed() -> bytes:
    """The two-event Bandwidth v2 status callback, with message ids of this test run."""
    events = orjson.loads(payload("bandwidth_v2", "message_delivered_and_failed.json"))
    run = uuid.uuid4().hex[:10]
    for i, event in enumerate(events):
        event["message"]["id"] = f"storm-{run}-{i}"
    return orjson.dumps(events)


async def burst(url: str, body: bytes, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return list(await asyncio.gather(*(client.post(url, content=body) for _ in range(count))))


def sequence(url: str, body: bytes, count: int) -> list[httpx.Response]:
    with httpx.Client(timeout=30) as client:
        return [client.post(url, content=body) for _ in range(count)]


def test_duplicate_storm_across_a_restart(
    make_config: Callable[..., Config],
    records: Callable[[str], list[Record]],
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Not shed for a late event loop: a stall of a loaded box (once in CI: 33 of 90 copies
    # answered 503 overloaded) is not what this test is about.
    config = make_config(
        {"bandwidth-v2": {"enabled": True, "topic": topic}}, server={"max_loop_lag_ms": 60_000}
    )
    body = unique_delivered_and_failed()
    expected = bandwidth_event_ids(body)
    assert len(set(expected)) == 2
    labels = {"provider": "bandwidth-v2"}

    with running(config) as base:
        url = f"{base}/callbacks/bandwidth-v2"
        before = httpx.get(f"{base}/metrics", timeout=10).text
        replies = asyncio.run(burst(url, body, CONCURRENT))
        replies += sequence(url, body, SEQUENTIAL)
        first_run = httpx.get(f"{base}/metrics", timeout=10).text

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="connector"), running(config) as base:
        # A new connector (another replica, or this one restarted) rebuilt its window from Kafka.
        rebuilt = [r.getMessage() for r in caplog.records if "window rebuilt" in r.getMessage()]
        url = f"{base}/callbacks/bandwidth-v2"
        replies += asyncio.run(burst(url, body, AFTER_RESTART // 2))
        replies += sequence(url, body, AFTER_RESTART - AFTER_RESTART // 2)
        after = httpx.get(f"{base}/metrics", timeout=10).text

    assert rebuilt == ["dedupe window rebuilt from Kafka: 2 event id(s)"]
    # Every copy answered 200 with the same, deterministic event ids ...
    assert Counter(r.status_code for r in replies) == {200: CONCURRENT + SEQUENTIAL + AFTER_RESTART}
    assert {tuple(r.json()["event_ids"]) for r in replies} == {tuple(expected)}
    # ... and each event is in Kafka once.
    stored = records(topic)
    assert sorted(r.value["event_id"] for r in stored) == sorted(expected)
    assert {r.headers["event_id"] for r in stored} == set(expected)

    # The repeats were counted (two events per callback), and only the first copy produced.
    def grown(text: str, name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    per_callback = len(expected)
    assert grown(first_run, "mms_duplicate_events_total", **labels) == per_callback * (
        CONCURRENT + SEQUENTIAL - 1
    )
    assert grown(after, "mms_duplicate_events_total", **labels) == per_callback * (
        CONCURRENT + SEQUENTIAL + AFTER_RESTART - 1
    )
    assert grown(after, "mms_records_produced_total", topic=topic) == per_callback
    assert grown(after, "mms_callbacks_total", provider="bandwidth-v2", outcome="duplicate") == (
        CONCURRENT + SEQUENTIAL + AFTER_RESTART - 1
    )
    assert grown(after, "mms_callbacks_total", provider="bandwidth-v2", outcome="published") == 1


def test_an_event_repeated_within_one_callback_is_produced_once(
    make_config: Callable[..., Config], records: Callable[[str], list[Record]], topic: str
) -> None:
    one = orjson.loads(bandwidth_callback(f"twice-{uuid.uuid4().hex[:10]}"))
    body = orjson.dumps(one + one)
    config = make_config({"bandwidth-v2": {"enabled": True, "topic": topic}})
    with running(config) as base:
        reply = httpx.post(f"{base}/callbacks/bandwidth-v2", content=body, timeout=30)
    assert reply.status_code == 200, reply.text
    ids = reply.json()["event_ids"]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert [r.value["event_id"] for r in records(topic)] == [ids[0]]


def test_window_disabled_without_rebuild_a_restart_produces_again(
    make_config: Callable[..., Config], records: Callable[[str], list[Record]], topic: str
) -> None:
    """The control experiment: the storm test above would catch a window that does not work."""
    config = make_config(
        {"bandwidth-v2": {"enabled": True, "topic": topic}},
        dedupe={"rebuild_on_start": False},
    )
    body = bandwidth_callback(f"control-{uuid.uuid4().hex[:10]}")
    for _ in range(2):
        with running(config) as base:
            replies = sequence(f"{base}/callbacks/bandwidth-v2", body, 3)
        assert [r.status_code for r in replies] == [200, 200, 200]
    # Suppressed within each run, but the second run did not know what the first produced.
    assert [r.value["event_id"] for r in records(topic)] == bandwidth_event_ids(body) * 2
