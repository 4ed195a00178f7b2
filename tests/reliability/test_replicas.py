"""Three replicas behave as one: a provider's retries spread over them, the broker stopped and
started, one replica SIGKILLed and started again, the shared store restarted. Every callback
is finally acknowledged, and each event is in Kafka exactly once; with the shared store down
throughout, nothing is lost either (the duplicates that then happen are counted and shown).

Before the shared window: two replicas, retries sent to the other one, the broker killed:
484 duplicate records in 13,500 callbacks (3.6 %), all from the outage window.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from connector import devstack
from connector.devstack import Endpoints
from tests.live import free_port, read_topic, serve_config, shared_window
from tests.reliability.conftest import bandwidth_callback, bandwidth_event_ids, serve, wait_ready

pytestmark = pytest.mark.integration

REPLICAS = 3
RATE = 30  # callbacks per second, spread over the replicas
STREAM_SECONDS = 22.0
RETRY_EVERY = 1.0
RETRY_FOR = 75.0  # longer than the claim TTL below: a dead replica's claims expire
CLAIM_TTL = 20.0  # the test's own: longer than any delivery here takes after the broker is back
PASSWORD_VAR = "MMS_TEST_REPLICAS_REDIS_PASSWORD"


@dataclass
class Callback:
    index: int
    body: bytes
    event_id: str
    replies: list[int] = field(default_factory=list)  # per attempt; 0: no answer

    @property
    def ok(self) -> bool:
        return bool(self.replies) and 200 <= self.replies[-1] < 300


class Replicas:
    """`mms-connector serve` processes on one topic and one shared window."""

    def __init__(self, home: Path, endpoints: Endpoints, topic: str, tmp: Path) -> None:
        self.ports = [free_port() for _ in range(REPLICAS)]
        self.tmp = tmp
        shared, self.env = shared_window(
            endpoints.redis_url or "", PASSWORD_VAR,
            claim_ttl_seconds=CLAIM_TTL,
            # Three replicas, a broker and Redis on 2 cores: a late event loop is not the store
            # failing (which would fail open, and allow a duplicate).
            timeout_seconds=5,
        )  # fmt: skip
        # A short deadline: retries reach another replica while the first copy is in flight.
        provider = {
            "enabled": True,
            "topic": topic,
            "deadline_seconds": 2,
            "auth": {"unauthenticated": True},
        }
        self.configs = [
            serve_config(
                tmp / f"replica-{i}.yaml",
                endpoints,
                port,
                topic,
                dedupe={"shared": shared},
                providers={"bandwidth-v2": provider},
            )
            for i, port in enumerate(self.ports)
        ]
        self.procs: list[subprocess.Popen[bytes]] = [self.start(i) for i in range(REPLICAS)]

    def start(self, i: int) -> subprocess.Popen[bytes]:
        log = self.tmp / f"replica-{i}-{time.monotonic_ns()}.log"
        proc = serve(self.configs[i], log, self.env)
        wait_ready(self.url(i, "/readyz").removesuffix("/readyz"), proc, log)
        return proc

    def url(self, i: int, path: str = "/callbacks/bandwidth-v2") -> str:
        return f"http://127.0.0.1:{self.ports[i % REPLICAS]}{path}"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def provider(replicas: Replicas, run: str) -> list[Callback]:
    """RATE callbacks a second for STREAM_SECONDS, each retried every RETRY_EVERY seconds until
    acknowledged (for RETRY_FOR), every attempt on the next replica."""
    sent: list[Callback] = []

    async def deliver(client: httpx.AsyncClient, cb: Callback) -> None:
        deadline = time.monotonic() + RETRY_FOR
        attempt = 0
        while not cb.ok and time.monotonic() < deadline:
            if attempt:
                await asyncio.sleep(RETRY_EVERY)
            try:
                reply = await client.post(replicas.url(cb.index + attempt), content=cb.body)
                cb.replies.append(reply.status_code)
            except httpx.HTTPError:
                cb.replies.append(0)
            attempt += 1

    async with httpx.AsyncClient(timeout=10) as client:
        started, tasks = time.monotonic(), []
        while time.monotonic() - started < STREAM_SECONDS:
            body = bandwidth_callback(f"{run}-{len(sent)}")
            (event_id,) = bandwidth_event_ids(body)
            sent.append(Callback(len(sent), body, event_id))
            tasks.append(asyncio.create_task(deliver(client, sent[-1])))
            await asyncio.sleep(max(0.0, started + len(sent) / RATE - time.monotonic()))
        await asyncio.gather(*tasks)
    return sent


async def chaos(home: Path, replicas: Replicas, with_store: bool) -> list[str]:
    """Broker stopped and started, replica 1 SIGKILLed and started again, the store restarted."""
    done = []

    async def at(seconds: float, started: float) -> None:
        await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))

    started = time.monotonic()
    await at(3, started)
    await asyncio.to_thread(devstack.stop_kafka, home)
    done.append(f"broker stopped at {time.monotonic() - started:.1f} s")
    await at(7, started)
    await asyncio.to_thread(devstack.start_kafka, home)
    done.append(f"broker back at {time.monotonic() - started:.1f} s")
    await at(10, started)
    replicas.procs[1].send_signal(signal.SIGKILL)
    replicas.procs[1].wait(10)
    done.append(f"replica 1 SIGKILLed at {time.monotonic() - started:.1f} s")
    await at(12, started)
    replicas.procs[1] = await asyncio.to_thread(replicas.start, 1)
    done.append(f"replica 1 back at {time.monotonic() - started:.1f} s")
    if with_store:
        await at(15, started)
        await asyncio.to_thread(devstack.stop_redis, home)
        await asyncio.to_thread(devstack.start_redis, home)
        done.append(f"store restarted at {time.monotonic() - started:.1f} s")
    return done


def run_replicas(
    dedicated_stack: tuple[Path, Endpoints], tmp_path: Path, with_store: bool
) -> tuple[list[Callback], Counter[str], list[str]]:
    home, endpoints = dedicated_stack
    topic = f"mms.test.replicas.{uuid.uuid4().hex[:8]}"
    if not with_store:
        devstack.stop_redis(home)
    replicas = Replicas(home, endpoints, topic, tmp_path)
    try:

        async def scenario() -> tuple[list[Callback], list[str]]:
            stream = asyncio.create_task(provider(replicas, uuid.uuid4().hex[:8]))
            events = await chaos(home, replicas, with_store)
            return await stream, events

        sent, events = asyncio.run(scenario())
    finally:
        replicas.stop()
        if not with_store:
            devstack.start_redis(home)
    produced = Counter(r.value["event_id"] for r in read_topic(endpoints, topic, timeout=60))
    return sent, produced, events


def summary(sent: list[Callback], produced: Counter[str], events: list[str]) -> str:
    attempts = Counter(len(cb.replies) for cb in sent)
    statuses = Counter(status for cb in sent for status in cb.replies)
    doubled = sum(n - 1 for n in produced.values() if n > 1)
    return (
        f"{len(sent)} callbacks at {RATE}/s over {REPLICAS} replicas; {'; '.join(events)}; "
        f"answers {dict(statuses)}; attempts per callback {dict(sorted(attempts.items()))}; "
        f"{sum(produced.values())} records for {len(produced)} events, {doubled} duplicates"
    )


def test_three_replicas_lose_nothing_and_produce_each_event_once(
    dedicated_stack: tuple[Path, Endpoints], tmp_path: Path
) -> None:
    sent, produced, events = run_replicas(dedicated_stack, tmp_path, with_store=True)
    print(f"\nreplicas, shared window: {summary(sent, produced, events)}")
    assert [cb.index for cb in sent if not cb.ok] == []
    assert {cb.event_id for cb in sent} <= set(produced), "acknowledged and not in Kafka"
    assert {e: n for e, n in produced.items() if n > 1} == {}


def test_with_the_shared_store_down_nothing_is_lost(
    dedicated_stack: tuple[Path, Endpoints], tmp_path: Path
) -> None:
    sent, produced, events = run_replicas(dedicated_stack, tmp_path, with_store=False)
    print(f"\nreplicas, shared store down throughout: {summary(sent, produced, events)}")
    assert [cb.index for cb in sent if not cb.ok] == []
    assert {cb.event_id for cb in sent} <= set(produced), "acknowledged and not in Kafka"
