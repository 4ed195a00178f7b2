"""The Kafka producer, with delivery reports bridged to asyncio futures.

`produce()` only enqueues (it never waits on the network), so it runs on the event loop; a
background thread serves delivery reports and resolves each message's future on the loop. A
callback is acknowledged only when every one of its futures has resolved successfully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)

# The guarantees the connector promises; config may tune batching but never weaken these.
GUARANTEES: dict[str, str | int | bool] = {
    "acks": "all",
    "enable.idempotence": True,
    "max.in.flight.requests.per.connection": 5,
}
DEFAULTS: dict[str, str | int | float | bool] = {
    "linger.ms": 5,
    "compression.type": "lz4",
    # Give up well after any provider deadline so late deliveries still land (the retry is
    # then a duplicate with the same event_id) but memory does not hold messages forever.
    "message.timeout.ms": 120_000,
}


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """A record as the producer sends it: bytes, the value in the wire format."""

    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes | None]]  # None: a header without a value


@dataclass(slots=True)
class _Batch:
    """The records of one callback: its future resolves when the last one is acknowledged."""

    future: asyncio.Future[None]
    remaining: int


class PublishError(Exception):
    """Kafka did not take or did not acknowledge a record: the callback must not be acked."""


class Publisher:
    def __init__(
        self,
        client: Mapping[str, str | int | float | bool],
        producer: Mapping[str, str | int | float | bool],
    ) -> None:
        conf: dict[str, object] = {**DEFAULTS, **producer, **client, **GUARANTEES}
        conf["error_cb"] = self._on_error
        # librdkafka's own lines go through logging (JSON, like the rest) instead of raw stderr.
        conf["logger"] = log
        self._producer = Producer(conf)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._reports: list[tuple[_Batch, KafkaError | None]] = []
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    @staticmethod
    def _on_error(err: KafkaError) -> None:
        log.warning("kafka: %s", err)

    def send(self, messages: Sequence[KafkaRecord]) -> asyncio.Future[None]:
        """Produce every message; the future resolves once all are acknowledged, or fails with
        the first failed delivery. Raises PublishError if the producer refuses a message.

        One future per callback, however many records it holds: the request path waits on
        it directly, with no task or gather around it.
        """
        loop = asyncio.get_running_loop()
        batch = _Batch(loop.create_future(), len(messages))
        if not messages:
            batch.future.set_result(None)
        reported = partial(self._reported, loop, batch)
        for msg in messages:
            try:
                self._producer.produce(
                    msg.topic,
                    value=msg.value,
                    key=msg.key,
                    headers=list(msg.headers),
                    on_delivery=reported,
                )
            except (BufferError, KafkaException) as exc:
                batch.future.cancel()  # reports of the records already queued are ignored
                raise PublishError(f"producer refused the record: {exc}") from exc
        return batch.future

    def _reported(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: _Batch,
        err: KafkaError | None,
        _msg: Message,
    ) -> None:
        # Runs on the poll thread. Reports are handed to the loop in batches: one wake-up of
        # the loop per batch, not one per record (each wake-up is a syscall and a GIL handoff).
        with self._lock:
            self._reports.append((batch, err))
            first = len(self._reports) == 1
        if first:
            # The loop may already be closed when the final flush at shutdown reports.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle_reports)

    def _settle_reports(self) -> None:
        with self._lock:
            reports, self._reports = self._reports, []
        for batch, err in reports:
            fut = batch.future
            if fut.done():  # failed already, or nobody waits; the record may still have landed
                continue
            if err is not None:
                fut.set_exception(PublishError(f"delivery failed: {err.str()}"))
                continue
            batch.remaining -= 1
            if batch.remaining == 0:
                fut.set_result(None)

    def ping(self, timeout: float = 5.0) -> None:
        """Raise unless the cluster answers a metadata request (readiness)."""
        self._producer.list_topics(timeout=timeout)

    def close(self, timeout: float = 30.0) -> int:
        """Flush what is queued (graceful shutdown); returns how many records were left.

        Records still unsent after `timeout` are purged (their callbacks were never acked, so
        the providers retry them) and the client is destroyed: a closed publisher leaves no
        librdkafka thread behind reconnecting to the cluster.
        """
        remaining = self._producer.flush(timeout)
        self._stopping.set()
        self._poller.join()
        if remaining:
            self._producer.purge()
            self._producer.flush(0)
        self._producer.close()
        return remaining
