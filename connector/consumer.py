"""Reading topics back: `tail`, dead-letter replay, and rebuilding the dedupe window."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, TopicPartition

Settings = Mapping[str, str | int | float | bool]


def _consumer(settings: Settings, purpose: str) -> Consumer:
    return Consumer(
        {
            **settings,
            # A throwaway group: reading back never moves anyone's committed offsets.
            "group.id": f"mms-connector-{purpose}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )


def read_until_end(
    settings: Settings, topic: str, *, since_ms: int | None = None, timeout: float = 10.0
) -> Iterator[Message]:
    """Every message of `topic` from `since_ms` (or the beginning) up to its end when called.

    Stops at each partition's end (what existed when reading started), so it terminates on a
    busy topic too. A topic that does not exist yet yields nothing.
    """
    consumer = _consumer(settings, "read")
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return
        partitions = [TopicPartition(topic, p) for p in meta.partitions]
        if since_ms is not None:
            for tp in partitions:
                tp.offset = since_ms
            partitions = consumer.offsets_for_times(partitions, timeout=timeout)
        else:
            for tp in partitions:
                tp.offset = OFFSET_BEGINNING
        ends = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if tp.offset == OFFSET_END or high <= max(tp.offset, low):
                continue  # nothing to read in this partition
            ends[tp.partition] = high
        if not ends:
            return
        consumer.assign([tp for tp in partitions if tp.partition in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            partition, offset = msg.partition(), msg.offset()
            if msg.error() or partition is None or offset is None:
                continue  # partition EOF or a transient error; the end offsets decide
            if offset < ends.get(partition, -1):
                yield msg
            if offset >= ends.get(partition, 0) - 1:
                ends.pop(partition, None)
    finally:
        consumer.close()


def recent_event_ids(
    settings: Settings, topics: list[str], window_seconds: float
) -> list[tuple[str, float]]:
    """(event_id, age in seconds) of records produced within the window, from their headers."""
    now_ms = int(time.time() * 1000)
    since = now_ms - int(window_seconds * 1000)
    found = []
    for topic in topics:
        for msg in read_until_end(settings, topic, since_ms=since):
            headers = dict(msg.headers() or [])
            event_id = headers.get("event_id")
            if event_id:
                _, ts = msg.timestamp()
                # bytes as consumed; str only in a Message built by hand
                if isinstance(event_id, bytes):
                    event_id = event_id.decode()
                found.append((event_id, max(0.0, (now_ms - ts) / 1000)))
    return found


def follow(
    settings: Settings, topic: str, *, from_beginning: bool, idle_timeout: float | None
) -> Iterator[Message]:
    """Messages as they arrive (for `tail`); stops after `idle_timeout` seconds without any."""
    consumer = _consumer(settings, "tail")
    consumer.subscribe(
        [topic],
        on_assign=lambda c, parts: c.assign(
            [
                TopicPartition(
                    p.topic, p.partition, OFFSET_BEGINNING if from_beginning else OFFSET_END
                )
                for p in parts
            ]
        ),
    )
    last = time.monotonic()
    try:
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            last = time.monotonic()
            yield msg
    finally:
        consumer.close()
