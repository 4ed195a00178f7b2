"""Publisher lifecycle without a broker: what is left at shutdown fails, nothing lingers."""

from __future__ import annotations

import asyncio
import os

import pytest

from connector.publisher import KafkaRecord, Publisher, PublishError
from tests.live import free_port


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_close_fails_what_was_never_sent_and_destroys_the_client() -> None:
    asyncio.run(close_with_a_record_queued())


async def close_with_a_record_queued() -> None:
    before = threads()
    publisher = Publisher({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, {})
    assert threads() > before  # librdkafka's own threads
    pending = publisher.send([KafkaRecord("t", b"k", b"v", [("event_id", b"1")])])
    await asyncio.sleep(0.05)
    left = publisher.close(0.2)  # blocks the loop; the failures settle on it afterwards
    assert left == 1
    with pytest.raises(PublishError, match="Purged"):
        await asyncio.wait_for(pending, 5)
    # A closed publisher must not keep reconnecting (and logging) for the rest of the process.
    for _ in range(50):  # librdkafka's threads exit on their own schedule; give them 5 s
        if threads() == before:
            break
        await asyncio.sleep(0.1)
    assert threads() == before


def test_the_loop_serves_the_producers_error_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    # No thread polls the producer: the loop does, while records are in flight and after.
    asyncio.run(unreachable_broker_logged(caplog))


async def unreachable_broker_logged(caplog: pytest.LogCaptureFixture) -> None:
    publisher = Publisher({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, {})
    publisher.send([KafkaRecord("t", b"k", b"v", [])])
    for _ in range(50):
        if any(r.getMessage().startswith("kafka: ") for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    publisher.close(0)
    assert any(r.getMessage().startswith("kafka: ") for r in caplog.records)
