"""The Kafka producer, with delivery reports bridged to asyncio futures.

`produce()` only enqueues (it never waits on the network), so it runs on the event loop, and so
do the delivery reports: the loop polls the producer every millisecond while records are in
flight (every second otherwise, for its error callbacks), and each report resolves its
callback's future there. A thread polling instead handed each batch of reports to the loop (a
lock, a wake-up of the loop, the GIL passed back and forth): that thread alone took 5 % of the
process's CPU at saturation. A callback is acknowledged only when every one of its futures has
resolved successfully.
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


# How often the loop serves delivery reports while records are in flight, and otherwise.
IN_FLIGHT_POLL_SECONDS = 0.001
IDLE_POLL_SECONDS = 1.0


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
        # Set by the first send: the loop that serves the reports, and its thread.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._timer: asyncio.TimerHandle | None = None
        self._in_flight_polling = False
        # Held by close() while it flushes from another thread: the loop's poll then waits.
        self._closing = threading.Lock()
        self._closed = False

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
        if self._loop is not loop:
            self._loop, self._loop_thread = loop, threading.get_ident()
        batch = _Batch(loop.create_future(), len(messages))
        if not messages:
            batch.future.set_result(None)
        reported = partial(self._reported, batch)
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
        if not self._in_flight_polling:
            self._poll_in(IN_FLIGHT_POLL_SECONDS)
        return batch.future

    def _poll_in(self, delay: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._in_flight_polling = delay == IN_FLIGHT_POLL_SECONDS
        self._timer = self._loop.call_later(delay, self._poll)

    def _poll(self) -> None:
        if not self._closing.acquire(blocking=False):
            self._poll_in(IN_FLIGHT_POLL_SECONDS)  # close() is flushing: it serves the reports
            return
        try:
            if self._closed:
                self._timer = None
                return
            self._producer.poll(0)
            in_flight = len(self._producer) > 0
        finally:
            self._closing.release()
        self._poll_in(IN_FLIGHT_POLL_SECONDS if in_flight else IDLE_POLL_SECONDS)

    def _reported(self, batch: _Batch, err: KafkaError | None, _msg: Message) -> None:
        if threading.get_ident() == self._loop_thread:
            self._settle(batch, err)
        elif self._loop is not None:
            # close()'s flush, on another thread. The loop may already be closed when the final
            # flush at shutdown reports.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._settle, batch, err)

    @staticmethod
    def _settle(batch: _Batch, err: KafkaError | None) -> None:
        fut = batch.future
        if fut.done():  # failed already, or nobody waits; the record may still have landed
            return
        if err is not None:
            fut.set_exception(PublishError(f"delivery failed: {err.str()}"))
            return
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
        with self._closing:
            remaining = self._producer.flush(timeout)
            if remaining:
                self._producer.purge()
                self._producer.flush(0)
            self._producer.close()
            self._closed = True
        return remaining
