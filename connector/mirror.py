"""The mirror: events topics in, every event out on `mirror.topic` with its media in our store.

A consumer group (`mirror.group_id`), so it scales out with partitions and never sits in a
provider's request path. For each record:

- media entries still at the provider (status `provider`, or an http(s) uri with no status, as
  v1 records have) are fetched (connector/fetch.py) and stored (`media.open_store`): uri the
  store's, `source_uri` the provider's URL, `url`, content type, size and sha256 of the bytes,
  status `stored`. A failure that may pass (timeout, 5xx, 429, connection, our store) is retried
  with exponential backoff (`retry_initial_seconds` .. `retry_max_seconds`) until
  `horizon_seconds` after the record's received_at; a final one (401, 403, 404, 410, too large,
  refused address ...), or one still failing at the horizon, leaves the entry `unavailable`
  with the reason. An event is never dropped nor held for ever.
- records with nothing to mirror are written unchanged (in the current schema), so the
  mirrored topic is a complete stream on its own; records that do not decode are copied as
  they were.

Order and offsets: the records of one key (in one source partition) are published in their
original order; different keys are mirrored concurrently, `mirror.concurrency` fetches at once.
A partition's offset is committed only up to its lowest record not yet acknowledged by Kafka on
the mirrored topic, so a crash or a rebalance re-mirrors (duplicates, same event_id), never
loses. A delivery that fails stops the mirror (without committing past it): it is restarted
and goes on from there.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext

from connector import media, metrics
from connector.codec import Codec, avro_deserializer, registry_client
from connector.config import Config, ConfigError, MediaFetchConfig
from connector.fetch import CONTENT_MISMATCH, Failed, Fetched, Fetcher, FetchPolicy
from connector.publisher import KafkaRecord, Publisher
from connector.record import Media

log = logging.getLogger("connector.mirror")

STORED, PROVIDER, UNAVAILABLE = "stored", "provider", "unavailable"
STORE_ERROR = "store_error"
# Consumed records not yet acknowledged, past which consumption pauses: bounded memory (a
# decoded record is a few KB; media bodies are held only while `concurrency` fetches run)
# however long one key's media keep failing.
MAX_PENDING = 1000
COMMIT_INTERVAL_SECONDS = 1.0
POLL_BATCH = 500
POLL_SECONDS = 0.2


def source_topics(config: Config) -> list[str]:
    """What the mirror reads: `mirror.source_topics`, else every enabled provider's topic."""
    topics = config.mirror.source_topics or sorted({p.topic for p in config.enabled().values()})
    if config.mirror.topic in topics:
        raise ConfigError(f"mirror.topic {config.mirror.topic!r} is also a source topic")
    return list(topics)


def needs_mirroring(entry: Mapping[str, Any]) -> bool:
    """Still at the provider: said so (v2), or an http(s) uri with no status (v1 records)."""
    status = entry.get("status")
    if status is not None:
        return bool(status == PROVIDER)
    return urlsplit(entry["uri"]).scheme in ("http", "https")


def retry_delay(attempt: int, initial: float, maximum: float) -> float:
    """Seconds before retry number `attempt` (0 for the first): doubling, capped."""
    return float(min(maximum, initial * 2 ** min(attempt, 64)))


def as_announced(fetched: Fetched, entry: Mapping[str, Any]) -> Fetched | Failed:
    """`fetched`, unless it differs from the size or SHA-256 the provider's callback gave
    (Telnyx does): a cut-off or swapped download is not stored as the message's media. Worth
    retrying (a truncated transfer); the horizon bounds it."""
    size, sha256 = entry.get("size"), entry.get("sha256")
    if size is not None and size != fetched.size:
        return Failed(CONTENT_MISMATCH, True, f"{fetched.size} bytes, the callback said {size}")
    if sha256 and sha256.lower() != fetched.sha256:
        return Failed(CONTENT_MISMATCH, True, "sha256 differs from the callback's")
    return fetched


def stored_entry(entry: Mapping[str, Any], stored: Media) -> dict[str, Any]:
    return {
        **entry,
        "uri": stored.uri,
        "source_uri": entry["uri"],
        "url": stored.url,
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
        "status": STORED,
        "reason": None,
    }


def unavailable_entry(entry: Mapping[str, Any], reason: str) -> dict[str, Any]:
    # uri stays the provider's URL: perhaps still worth a try by someone holding credentials.
    return {**entry, "status": UNAVAILABLE, "reason": reason}


class Offsets:
    """Per source partition, the offset to commit: its lowest record not yet acknowledged.

    Thread-safe: records are added and acknowledged on the event loop, partitions assigned
    and revoked in rebalance callbacks on the consumer's thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def assign(self, partitions: list[tuple[str, int]]) -> None:
        with self._lock:
            for tp in partitions:
                self._partitions.setdefault(tp, _Partition())

    def revoke(self, partitions: list[tuple[str, int]]) -> None:
        """Forget these partitions: acknowledgements still to come for them change nothing."""
        with self._lock:
            for tp in partitions:
                if state := self._partitions.pop(tp, None):
                    state.revoked = True

    def add(self, tp: tuple[str, int], offset: int) -> _Partition | None:
        """Track a consumed record; the partition's state, to acknowledge it with (None when
        the partition is not ours)."""
        with self._lock:
            state = self._partitions.get(tp)
            if state is not None:
                state.offsets.append(offset)
            return state

    def done(self, state: _Partition, offset: int) -> None:
        with self._lock:
            if state.revoked:
                return
            state.acked.add(offset)
            while state.offsets and state.offsets[0] in state.acked:
                state.acked.discard(state.offsets[0])
                state.next = state.offsets.popleft() + 1

    def pending(self) -> int:
        with self._lock:
            return sum(len(s.offsets) for s in self._partitions.values())

    def positions(self, only: list[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """The offset to commit per partition (the next record to mirror after a restart)."""
        with self._lock:
            return {
                tp: s.next
                for tp, s in self._partitions.items()
                if s.next is not None and (only is None or tp in only)
            }

    def uncommitted(self) -> list[TopicPartition]:
        """Positions that moved since last reported here (what to commit now)."""
        out = []
        with self._lock:
            for (topic, partition), s in self._partitions.items():
                if s.next is not None and s.next != s.committed:
                    s.committed = s.next
                    out.append(TopicPartition(topic, partition, s.next))
        return out


@dataclass(eq=False)
class _Partition:
    offsets: collections.deque[int] = field(default_factory=collections.deque)
    acked: set[int] = field(default_factory=set)
    next: int | None = None
    committed: int | None = None
    revoked: bool = False


class MirrorFailed(Exception):
    """The mirror cannot go on safely (a record Kafka did not take); restart it."""


@dataclass(frozen=True)
class Clients:
    """What a running mirror connected, built whole by `Mirror.run`."""

    codec: Codec
    deserialize: Callable[..., Any]
    publisher: Publisher
    consumer: Consumer


class Mirror:
    def __init__(self, config: Config, env: Mapping[str, str]) -> None:
        self.config = config
        self.env = env
        self.topics = source_topics(config)
        self.store = media.open_store(config.media, env)
        self.ready = False
        self._offsets = Offsets()
        self._chains: dict[tuple[str, int, bytes | None], asyncio.Task[None]] = {}
        self._fatal: BaseException | None = None
        self._default_policy = FetchPolicy.from_config(MediaFetchConfig(), env, "media_fetch")
        self._policies = {
            name: FetchPolicy.from_config(p.media_fetch, env, f"providers.{name}.media_fetch")
            for name, p in config.providers.items()
        }
        self._retry = {name: p.media_fetch for name, p in config.providers.items()}
        self._fetchers: dict[str, Fetcher] = {}
        self._slots = asyncio.Semaphore(config.mirror.concurrency)
        self.clients: Clients | None = None  # while running

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Mirror until `stop` is set; raises MirrorFailed when it cannot go on safely."""
        clients = await asyncio.to_thread(self._start, asyncio.get_running_loop())
        self.clients = clients
        next_commit = time.monotonic() + COMMIT_INTERVAL_SECONDS
        try:
            self.ready = True
            while not stop.is_set() and self._fatal is None:
                self._flow_control(clients.consumer)
                batch = await asyncio.to_thread(clients.consumer.consume, POLL_BATCH, POLL_SECONDS)
                for msg in batch:
                    error = msg.error()
                    if error is None:
                        self._dispatch(clients, msg)
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer: %s", error)
                if time.monotonic() >= next_commit:
                    self._commit(clients.consumer, asynchronous=True)
                    self._measure_lag(clients.consumer)
                    next_commit = time.monotonic() + COMMIT_INTERVAL_SECONDS
        finally:
            self.ready = False
            await self._shutdown(clients)
            self.clients = None
        if self._fatal is not None:
            raise MirrorFailed(str(self._fatal)) from self._fatal

    def _start(self, loop: asyncio.AbstractEventLoop) -> Clients:
        settings = self.config.schema_registry
        registry = registry_client(settings.client_settings(self.env))
        codec = Codec(registry, settings.compatibility, settings.startup_patience_seconds)
        codec.register(self.config.mirror.topic)
        kafka = self.config.kafka.client_settings(self.env)
        publisher = Publisher(kafka, self.config.kafka.producer)
        consumer = Consumer(
            {
                **kafka,
                "group.id": self.config.mirror.group_id,
                "enable.auto.commit": False,
                # A new group mirrors what the topics still hold: the stream is complete.
                "auto.offset.reset": "earliest",
                "logger": log,
            }
        )
        consumer.subscribe(
            self.topics,
            on_assign=self._assigned,
            on_revoke=lambda c, partitions: self._revoked(loop, c, partitions),
        )
        return Clients(codec, avro_deserializer(registry), publisher, consumer)

    async def _shutdown(self, clients: Clients) -> None:
        """Stop mirroring, wait for what was produced, commit up to it, close everything."""
        tasks = list(self._chains.values())
        for task in tasks:
            task.cancel()  # not produced yet (fetching or waiting to retry): mirrored again later
        await asyncio.gather(*tasks, return_exceptions=True)
        flush = self.config.kafka.flush_timeout_seconds
        left = await asyncio.to_thread(clients.publisher.close, flush)
        if left:
            log.error("shutdown: %d mirrored record(s) not acknowledged", left)
        await asyncio.sleep(0)  # let the last delivery reports settle their offsets
        self._commit(clients.consumer, asynchronous=False)
        await asyncio.to_thread(clients.consumer.close)
        for fetcher in self._fetchers.values():
            await fetcher.aclose()
        metrics.MIRROR_PENDING.set(0)

    # -- consuming -------------------------------------------------------------------------

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._offsets.assign([(p.topic, p.partition) for p in partitions])
        log.info("assigned %s", [f"{p.topic}[{p.partition}]" for p in partitions])

    def _revoked(
        self, loop: asyncio.AbstractEventLoop, consumer: Consumer, partitions: list[TopicPartition]
    ) -> None:
        # On the consumer's thread, inside consume(): commit what is acknowledged, then forget
        # the partitions; their records not produced yet are left to the next owner.
        tps = [(p.topic, p.partition) for p in partitions]
        done = [TopicPartition(t, p, o) for (t, p), o in self._offsets.positions(tps).items()]
        if done:
            with contextlib.suppress(Exception):
                consumer.commit(offsets=done, asynchronous=False)
        self._offsets.revoke(tps)
        loop.call_soon_threadsafe(self._cancel_partitions, set(tps))
        log.info("revoked %s", [f"{t}[{p}]" for t, p in tps])

    def _cancel_partitions(self, tps: set[tuple[str, int]]) -> None:
        for (topic, partition, _key), task in list(self._chains.items()):
            if (topic, partition) in tps:
                task.cancel()

    def _flow_control(self, consumer: Consumer) -> None:
        pending = self._offsets.pending()
        metrics.MIRROR_PENDING.set(pending)
        assignment = consumer.assignment()
        if not assignment:
            return
        if pending >= MAX_PENDING:
            consumer.pause(assignment)
        elif pending < MAX_PENDING // 2:
            consumer.resume(assignment)

    def _dispatch(self, clients: Clients, msg: Message) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            return  # not a record of an assigned partition (every consumed record has all three)
        state = self._offsets.add((topic, partition), offset)
        if state is None:
            return  # revoked while this batch was in hand: the next owner mirrors it
        chain = (topic, partition, msg.key())
        previous = self._chains.get(chain)
        task = asyncio.create_task(self._mirror_one(clients, msg, topic, offset, state, previous))
        self._chains[chain] = task
        task.add_done_callback(lambda t: self._chain_done(chain, t))

    def _chain_done(self, chain: tuple[str, int, bytes | None], task: asyncio.Task[None]) -> None:
        if self._chains.get(chain) is task:
            del self._chains[chain]

    def _commit(self, consumer: Consumer, *, asynchronous: bool) -> None:
        offsets = self._offsets.uncommitted()
        if not offsets:
            return
        try:
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # the next commit carries the same or later positions
            log.warning("commit failed: %s", exc)

    def _measure_lag(self, consumer: Consumer) -> None:
        positions = self._offsets.positions()
        lag: dict[str, int] = dict.fromkeys(self.topics, 0)
        for tp in consumer.assignment():
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            position = positions.get((tp.topic, tp.partition))
            if high >= 0 and position is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - position)
        for topic, value in lag.items():
            metrics.MIRROR_LAG.labels(topic).set(value)

    # -- one record ------------------------------------------------------------------------

    async def _mirror_one(
        self,
        clients: Clients,
        msg: Message,
        source: str,
        offset: int,
        state: _Partition,
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            out, outcome = await self._mirrored(clients, msg, source)
            if previous is not None:
                await asyncio.wait([previous])  # the key's earlier record is produced first
            delivered = clients.publisher.send([out])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc, msg)
            return

        def settled(future: asyncio.Future[None]) -> None:
            if future.cancelled() or future.exception() is not None:
                self._fail(future.exception() or RuntimeError("delivery cancelled"), msg)
                return
            metrics.MIRROR_RECORDS.labels(outcome).inc()
            self._offsets.done(state, offset)

        delivered.add_done_callback(settled)

    def _fail(self, exc: BaseException, msg: Message) -> None:
        if self._fatal is None:
            self._fatal = exc
            log.error(
                "mirrored record not published: stopping",
                extra={"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()},
                exc_info=exc,
            )

    async def _mirrored(
        self, clients: Clients, msg: Message, source: str
    ) -> tuple[KafkaRecord, str]:
        """The record for the mirrored topic, and what was done to it."""
        topic = self.config.mirror.topic
        headers = _copied_headers(msg)
        key = msg.key() or b""
        try:
            record = clients.deserialize(
                msg.value(), SerializationContext(source, MessageField.VALUE)
            )
            entries = list(record["media"])
        except Exception as exc:
            log.error(
                "undecodable record copied as it is",
                extra={
                    "topic": msg.topic(),
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "error": type(exc).__name__,
                },
            )
            return KafkaRecord(topic, key, msg.value() or b"", headers), "undecodable"
        todo = [i for i, entry in enumerate(entries) if needs_mirroring(entry)]
        if todo:
            deadline = _timestamp(record["received_at"]) + self._settings(record).horizon_seconds
            mirrored = await asyncio.gather(
                *(self._mirror_entry(record, entries[i], deadline) for i in todo)
            )
            for i, entry in zip(todo, mirrored, strict=True):
                entries[i] = entry
            record["media"] = entries
        value = await asyncio.to_thread(clients.codec.encode, topic, record)
        return KafkaRecord(topic, key, value, headers), "mirrored" if todo else "passed_through"

    def _settings(self, record: Mapping[str, Any]) -> MediaFetchConfig:
        return self._retry.get(record["provider"]) or MediaFetchConfig()

    def _fetcher(self, provider: str) -> Fetcher:
        if provider not in self._fetchers:
            policy = self._policies.get(provider, self._default_policy)
            self._fetchers[provider] = Fetcher(
                policy, max_connections=self.config.mirror.concurrency
            )
        return self._fetchers[provider]

    async def _mirror_entry(
        self, record: Mapping[str, Any], entry: Mapping[str, Any], deadline: float
    ) -> dict[str, Any]:
        provider, event_id = record["provider"], record["event_id"]
        settings = self._settings(record)
        fetcher = self._fetcher(provider)
        attempt = 0
        while True:
            async with self._slots:
                started = time.monotonic()
                outcome = await fetcher.fetch(entry["uri"])
                metrics.MEDIA_FETCH_LATENCY.labels(provider).observe(time.monotonic() - started)
                if isinstance(outcome, Fetched):
                    outcome = as_announced(outcome, entry)
                if isinstance(outcome, Fetched):
                    stored = await self._store(outcome, entry)
                    if isinstance(stored, Media):
                        metrics.MEDIA_FETCHED.labels(provider).inc()
                        metrics.MEDIA_FETCHED_BYTES.labels(provider).inc(outcome.size)
                        return stored_entry(entry, stored)
                    outcome = stored
            metrics.MEDIA_FETCH_FAILURES.labels(provider, outcome.reason).inc()
            delay = retry_delay(attempt, settings.retry_initial_seconds, settings.retry_max_seconds)
            give_up = not outcome.retryable or time.time() + delay > deadline
            log.warning(
                "media fetch failed",
                extra={
                    "event_id": event_id,
                    "provider": provider,
                    "host": urlsplit(entry["uri"]).hostname,
                    "reason": outcome.reason,
                    "detail": outcome.detail,
                    "attempt": attempt + 1,
                    "next": "unavailable" if give_up else f"retry in {delay:g} s",
                },
            )
            if give_up:
                metrics.MEDIA_UNAVAILABLE.labels(provider, outcome.reason).inc()
                return unavailable_entry(entry, outcome.reason)
            attempt += 1
            await asyncio.sleep(delay)

    async def _store(self, fetched: Fetched, entry: Mapping[str, Any]) -> Media | Failed:
        try:
            return await asyncio.to_thread(
                self.store.store, fetched.content, fetched.content_type, entry.get("filename")
            )
        except (OSError, ValueError) as exc:
            # Our store, not the provider: worth retrying like any passing failure.
            return Failed(STORE_ERROR, True, type(exc).__name__)


def _copied_headers(msg: Message) -> list[tuple[str, bytes | None]]:
    """A consumed record's headers, for its mirrored copy: names and values as they were."""
    raw = msg.headers() or []
    # From a consumer: a list of (name, bytes or None); a dict, or str values, only in a
    # Message built by hand (produce() sends a str as its UTF-8 bytes, as encoded here).
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    return [(name, v.encode() if isinstance(v, str) else v) for name, v in pairs]


def _timestamp(value: datetime | int) -> float:
    # The deserializer gives timestamp-micros as an aware datetime.
    return value.timestamp() if isinstance(value, datetime) else value / 1_000_000


def health_app(mirror: Mirror) -> Any:
    """/healthz (the process serves), /readyz (consuming, Kafka answering), /metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        clients = mirror.clients
        if not mirror.ready or clients is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await asyncio.to_thread(clients.publisher.ping, 2.0)
        except Exception:
            return JSONResponse({"status": "unavailable", "failed": "kafka"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )


def serve(config: Config, env: Mapping[str, str], host: str, port: int) -> None:
    """`mms-connector mirror`: the mirror on this thread until SIGTERM/SIGINT, its health and
    metrics served by uvicorn on a thread of their own (which leaves the signals to us)."""
    import signal

    import uvicorn

    mirror = Mirror(config, env)
    logging.getLogger("uvicorn.access").disabled = True
    server = uvicorn.Server(
        uvicorn.Config(health_app(mirror), host=host, port=port, log_config=None, lifespan="off")
    )
    health = threading.Thread(target=server.run, name="mirror-health", daemon=True)
    health.start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await mirror.run(stop)

    try:
        asyncio.run(main())
    finally:
        server.should_exit = True
        health.join(10)
