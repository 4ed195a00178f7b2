"""Getting encoded events into Kafka once: the protocol the endpoint and `dlq replay` share.

`connect` is start-up (schemas registered, the window rebuilt from the topics, the producer).
`Delivery.deliver` is one callback's events: each is claimed in this process's window (a
repeat arriving meanwhile waits for it) and then in the window every replica shares
(connector/claims.py), produced, and its delivery report awaited within the deadline; its
outcome settles both windows, even when it arrives after the deadline, so a late record is
still known and its retry not produced again. What another replica published or this one
already did is not produced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector import metrics
from connector.claims import Claim, SharedClaims
from connector.codec import DEAD_LETTER_SCHEMA, Codec, registry_client
from connector.config import Config
from connector.consumer import recent_event_ids
from connector.dedupe import Window
from connector.pipeline import EncodedEvent
from connector.publisher import Publisher, PublishError

log = logging.getLogger("connector.callbacks")

# Event ids marked published in the shared window per round trip at start-up.
MARK_BATCH = 10_000


@dataclass(frozen=True)
class Clients:
    """What start-up connects, built whole: the registry, the codec on it, the producer."""

    registry: SchemaRegistryClient
    codec: Codec
    publisher: Publisher


def connect(
    config: Config, env: Mapping[str, str], topics: Sequence[str], window: Window
) -> tuple[Clients, list[str]]:
    """Register the topics' schemas (and the dead letters'), rebuild `window` from what the
    topics hold, start producing; the event ids found in the topics within the window."""
    settings = config.schema_registry
    registry = registry_client(settings.client_settings(env))
    codec = Codec(registry, settings.compatibility, settings.startup_patience_seconds)
    kafka = config.kafka.client_settings(env)
    for topic in topics:
        log.info("schema for %s registered: id %s", topic, codec.register(topic))
    dlq = config.dead_letters.topic
    log.info("schema for %s registered: id %s", dlq, codec.register(dlq, DEAD_LETTER_SCHEMA))
    in_kafka: list[str] = []
    if config.dedupe.rebuild_on_start and config.dedupe.window_seconds > 0:
        try:
            seen = recent_event_ids(kafka, list(topics), config.dedupe.window_seconds)
        except KafkaException as exc:
            # Serving matters more than the window: callbacks still fail safe (503) while
            # Kafka is away, and consumers still have deterministic ids to drop repeats by.
            log.warning("dedupe window not rebuilt, Kafka unreachable: %s", exc)
        else:
            window.remember(seen)
            log.info("dedupe window rebuilt from Kafka: %d event id(s)", len(window))
            in_kafka = [event_id for event_id, _age in seen]
    return Clients(registry, codec, Publisher(kafka, config.kafka.producer)), in_kafka


class NotDelivered(Exception):
    """Not stored yet, the caller should say so and let the provider retry."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Delivered:
    produced: list[EncodedEvent]  # the rest were repeats, not produced again
    conflicting: list[str]  # repeats of published ids whose content differs: logged, counted


IN_FLIGHT_ELSEWHERE = ("in_flight_elsewhere", "being published by another replica")


class _InFlightElsewhere(Exception):
    """Another replica holds the claim: this process's waiters on it answer 503 too."""


@dataclass
class Delivery:
    clients: Clients
    window: Window
    claims: SharedClaims | None = None
    _tasks: set[asyncio.Future[None]] = field(default_factory=set)

    async def published_elsewhere(self, event_ids: Sequence[str]) -> None:
        """Event ids the topics hold (start-up): published, whoever claimed them. A replica that
        died after its records landed left their claims, which retries would wait out and then
        produce again."""
        if self.claims is not None:
            # In batches: the window holds up to dedupe.max_entries (1 M) ids.
            for start in range(0, len(event_ids), MARK_BATCH):
                await self.claims.published(event_ids[start : start + MARK_BATCH])

    async def deliver(self, encoded: Sequence[EncodedEvent], deadline: float) -> Delivered:
        """Produce what is new of `encoded`, awaiting every delivery report (this call's and
        those of earlier copies still in flight) until `deadline` (the loop's clock); raises
        NotDelivered."""
        window = self.window
        fresh, waits, claimed, conflicting = [], set(), {}, []
        for e in encoded:
            event_id = e.event.event_id
            pending = window.pending(event_id)
            if pending is not None:
                waits.add(pending)  # another request is publishing this event right now
            elif window.seen(event_id):
                if window.differs(event_id, e.digest):
                    conflicting.append(event_id)
            elif event_id not in claimed:
                fresh.append(e)
                claimed[event_id] = e.digest
        if claimed:
            window.claim(claimed)
            if self.claims is not None:
                fresh = await self._claim_shared(self.claims, fresh, claimed)
        try:
            if fresh:
                try:
                    sent = self.clients.publisher.send(
                        [e.kafka_record(self.clients.codec) for e in fresh]
                    )
                except PublishError as exc:
                    self._settle(claimed, exc)
                    raise
                # The publish goes on even if this request stops waiting (deadline): a late
                # delivery is still recorded in the windows, so the retry is not produced again.
                sent.add_done_callback(lambda f: self._settle(claimed, f.exception()))
                waits.add(sent)
            if waits:
                await _all_done(waits, deadline)
        except (PublishError, TimeoutError) as exc:
            metrics.KAFKA_ERRORS.inc()
            raise NotDelivered("kafka_unavailable", str(exc)) from exc
        except _InFlightElsewhere as exc:  # a repeat that waited on a copy claimed elsewhere
            raise NotDelivered(*IN_FLIGHT_ELSEWHERE) from exc
        return Delivered(fresh, conflicting)

    async def _claim_shared(
        self, claims: SharedClaims, fresh: list[EncodedEvent], claimed: dict[str, int]
    ) -> list[EncodedEvent]:
        """What of `fresh` is this process's to produce, by the shared window; `claimed` keeps
        only those."""
        shared = await claims.claim(claimed)
        elsewhere = [i for i, claim in shared.items() if claim is Claim.ELSEWHERE]
        if elsewhere:
            self.window.settle(claimed, _InFlightElsewhere())
            self._background(claims.release(claimed))
            metrics.SHARED_CLAIMS.labels("elsewhere").inc(len(elsewhere))
            raise NotDelivered(*IN_FLIGHT_ELSEWHERE)
        published = {i: claimed.pop(i) for i, c in shared.items() if c is Claim.PUBLISHED}
        self.window.settle(published, None, published)
        return [e for e in fresh if e.event.event_id in claimed]

    def _settle(self, claimed: dict[str, int], error: BaseException | None) -> None:
        self.window.settle(claimed, error, claimed)
        if self.claims is not None:
            claims = self.claims
            self._background(
                claims.published(claimed) if error is None else claims.release(claimed)
            )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, flush_timeout: float) -> int:
        """Flush the producer, let the last outcomes settle; the records not flushed."""
        left = await asyncio.to_thread(self.clients.publisher.close, flush_timeout)
        if self.claims is not None:
            await asyncio.sleep(0)  # the last deliveries' settling tasks start
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2)
            await self.claims.close()
        return left


async def _all_done(futures: set[asyncio.Future[None]], deadline: float) -> None:
    """Until every future is done, raising the first one's error, or TimeoutError at
    `deadline` (the loop's clock); the futures are never cancelled. asyncio.wait does the same
    with sets of what is done and pending built around it: 3 % of a JSON callback's CPU."""
    left = sum(not fut.done() for fut in futures)
    if left:
        await _until_done(futures, left, deadline)
    for fut in futures:
        fut.result()


async def _until_done(futures: set[asyncio.Future[None]], left: int, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def one_done(_fut: asyncio.Future[None]) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not waiter.done():
            waiter.set_result(None)

    def late() -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError("deadline"))

    for fut in futures:
        if not fut.done():
            fut.add_done_callback(one_done)
    timer = loop.call_at(deadline, late)
    try:
        await waiter
    finally:
        timer.cancel()
        for fut in futures:
            fut.remove_done_callback(one_done)
