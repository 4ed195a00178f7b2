"""Broker outage mid-stream: what was answered 2xx is in Kafka, nothing is lost or doubled.

A steady stream of unique Bandwidth v2 callbacks runs against the connector while the broker of a
dedicated stack is stopped and started again (same port, same data). Then the test reconciles
the replies with the topic, retries every callback not answered 2xx (as providers do) and checks
that each event id ends up in the topic exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from connector import devstack
from connector.devstack import Endpoints
from tests.live import config_for, read_topic, running
from tests.reliability.conftest import bandwidth_callback, bandwidth_event_ids

pytestmark = pytest.mark.integration

RATE = 20  # callbacks per second
MIN_SECONDS = 15.0
MAX_CALLBACKS = 1500  # bounds the stream whatever the broker does
DEADLINE_SECONDS = 2.0
BROKER_DOWN_AFTER = 4.0  # seconds into the stream
BROKER_DOWN_FOR = 4.0  # seconds between "stopped" and starting it again
KEEP_GOING_AFTER_RESTART = 4.0
RETRY_FOR = 90.0


@dataclass
class Sent:
    index: int
    body: bytes
    event_id: str
    at: float = 0.0
    replies: list[int] = field(default_factory=list)  # HTTP status per attempt, 0: no answer
    retry_after: list[str | None] = field(default_factory=list)
    answered_ids: list[list[str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # attempts that got no HTTP answer

    @property
    def first_ok(self) -> bool:
        return 200 <= self.replies[0] < 300

    @property
    def ok(self) -> bool:
        return 200 <= self.replies[-1] < 300


async def post(client: httpx.AsyncClient, url: str, sent: Sent) -> None:
    try:
        reply = await client.post(url, content=sent.body)
    except httpx.HTTPError as exc:
        sent.errors.append(f"{type(exc).__name__}: {exc}")
        sent.replies.append(0)
        sent.retry_after.append(None)
        return
    sent.replies.append(reply.status_code)
    sent.retry_after.append(reply.headers.get("retry-after"))
    if reply.is_success:
        sent.answered_ids.append(reply.json()["event_ids"])


async def send(client: httpx.AsyncClient, url: str, sent: Sent) -> None:
    """Send, and once more a second later if refused: a retry while the first copy may still be
    on its way to the broker (it must wait for that copy, not produce a second one)."""
    await post(client, url, sent)
    if not sent.ok:
        await asyncio.sleep(1.0)
        await post(client, url, sent)


@dataclass
class Timeline:
    started: float = 0.0
    stopping: float = 0.0
    stopped: float = 0.0
    restarting: float = 0.0
    restarted: float = 0.0
    sent: list[Sent] = field(default_factory=list)


async def outage(home: Path, timeline: Timeline) -> None:
    await asyncio.sleep(BROKER_DOWN_AFTER)
    timeline.stopping = time.monotonic()
    assert await asyncio.to_thread(devstack.stop_kafka, home)
    timeline.stopped = time.monotonic()
    await asyncio.sleep(BROKER_DOWN_FOR)
    timeline.restarting = time.monotonic()
    await asyncio.to_thread(devstack.start_kafka, home)
    timeline.restarted = time.monotonic()


async def stream(client: httpx.AsyncClient, url: str, home: Path, run: str) -> Timeline:
    """Unique callbacks at RATE per second while the broker goes away and comes back."""
    timeline = Timeline(started=time.monotonic())
    controller = asyncio.create_task(outage(home, timeline))
    tasks = []
    sent: list[Sent] = []
    while len(sent) < MAX_CALLBACKS:
        now = time.monotonic()
        restarted_long_enough = (
            controller.done() and now - timeline.restarted >= KEEP_GOING_AFTER_RESTART
        )
        if now - timeline.started >= MIN_SECONDS and restarted_long_enough:
            break
        body = bandwidth_callback(f"{run}-{len(sent):05d}")
        item = Sent(len(sent), body, bandwidth_event_ids(body)[0], at=now - timeline.started)
        sent.append(item)
        tasks.append(asyncio.create_task(send(client, url, item)))
        await asyncio.sleep(max(0.0, timeline.started + len(sent) / RATE - time.monotonic()))
    await asyncio.gather(*tasks)
    await controller  # raises if the broker could not be stopped or started
    timeline.sent = sent
    return timeline


async def retry(client: httpx.AsyncClient, url: str, sent: list[Sent]) -> None:
    """What providers do: send again whatever was not answered 2xx, until it is (bounded)."""
    deadline = time.monotonic() + RETRY_FOR
    while (left := [s for s in sent if not s.ok]) and time.monotonic() < deadline:
        await asyncio.gather(*(post(client, url, s) for s in left))
        if any(not s.ok for s in left):
            await asyncio.sleep(1.0)


def test_broker_outage_loses_nothing_and_doubles_nothing(
    dedicated_stack: tuple[Path, Endpoints], tmp_path: Path
) -> None:
    home, endpoints = dedicated_stack
    topic = f"mms.outage.{uuid.uuid4().hex[:8]}"
    config = config_for(
        endpoints,
        tmp_path,
        {"bandwidth-v2": {"enabled": True, "topic": topic, "deadline_seconds": DEADLINE_SECONDS}},
    )
    run = uuid.uuid4().hex[:8]
    warm_body = bandwidth_callback(f"{run}-warm")

    async def scenario(url: str) -> tuple[Timeline, list[str]]:
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them, or
        # a request may race the server closing its connection (no answer: retried like a 503).
        limits = httpx.Limits(
            max_connections=200, max_keepalive_connections=200, keepalive_expiry=2.0
        )
        async with httpx.AsyncClient(timeout=15, limits=limits) as client:
            timeline = await stream(client, url, home, run)
            # The topic right after the stream, before any retry.
            snapshot = await asyncio.to_thread(read_topic, endpoints, topic)
            await retry(client, url, timeline.sent)
        return timeline, [r.value["event_id"] for r in snapshot]

    with running(config) as base:
        url = f"{base}/callbacks/bandwidth-v2"
        # The topic exists and the producer is connected before the stream starts.
        warm = httpx.post(url, content=warm_body, timeout=30)
        assert warm.status_code == 200, warm.text
        timeline, snapshot = asyncio.run(scenario(url))

    sent = timeline.sent
    first = Counter(s.replies[0] for s in sent)
    # Re-sent during the stream, and answered 2xx during the stream (before the snapshot).
    during = [s for s in sent if len(s.replies) > 1 and not s.first_ok]
    ok_in_stream = {s.index for s in sent if any(200 <= r < 300 for r in s.replies[:2])}
    ok_first = [s for s in sent if s.first_ok]
    refused_first = [s for s in sent if not s.first_ok]
    in_snapshot = Counter(snapshot)
    late = [s for s in refused_first if in_snapshot[s.event_id]]
    retries = sum(len(s.replies) - 2 for s in during)
    print(
        f"\noutage: {len(sent)} callbacks over {sent[-1].at:.1f} s, first replies {dict(first)}; "
        f"broker stop asked at {timeline.stopping - timeline.started:.1f} s, done at "
        f"{timeline.stopped - timeline.started:.1f} s, back at "
        f"{timeline.restarted - timeline.started:.1f} s; {len(late)} first refused were in Kafka "
        f"right after the stream (late delivery); {len(during)} re-sent 1 s after their 503, "
        f"{len(ok_in_stream) - len(ok_first)} of them then 2xx; afterwards {retries} retries, "
        f"at most {max(len(s.replies) for s in sent) - 2} for one callback; "
        f"no answer: {[e for s in sent for e in s.errors]}"
    )

    # The outage was real: callbacks were refused, and only with 503 + Retry-After ...
    assert first[503] >= RATE * BROKER_DOWN_FOR, "few 503s: the broker outage had no effect"
    # (0: no HTTP answer, a connection closed under the request; never a timeout: the connector
    # answers within its deadline whatever the broker does.)
    assert set(first) <= {200, 503, 0}, first
    assert not [e for s in sent for e in s.errors if "Timeout" in e]
    assert all(s.retry_after[0] == "5" for s in refused_first if s.replies[0] == 503)
    # ... while callbacks before the outage and after the restart went through.
    assert any(s.first_ok and s.at < BROKER_DOWN_AFTER for s in sent)
    assert any(s.first_ok and s.at > timeline.restarted - timeline.started for s in sent)

    # Reconcile the replies with the topic as it was right after the stream.
    assert all(in_snapshot[sent[i].event_id] == 1 for i in ok_in_stream), "2xx but not in Kafka"
    assert all(s.index not in ok_in_stream for s in sent if not in_snapshot[s.event_id])
    assert max(in_snapshot.values()) == 1, "an event was produced twice during the outage"

    # Every callback was eventually acknowledged, always with its deterministic event id ...
    assert all(s.ok for s in sent), [s.replies for s in sent if not s.ok][:5]
    assert all(ids == [s.event_id] for s in sent for ids in s.answered_ids)
    # ... and after the retries every event id is in the topic exactly once.
    final = Counter(r.value["event_id"] for r in read_topic(endpoints, topic))
    doubled = {k: v for k, v in final.items() if v > 1}
    assert not doubled, f"{len(doubled)} event id(s) more than once in Kafka"
    assert set(final) == {s.event_id for s in sent} | set(bandwidth_event_ids(warm_body))
