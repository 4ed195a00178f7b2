"""Bandwidth v2 callbacks over HTTP into the real Kafka, read back through the real registry."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from connector.codec import subject
from connector.config import Config
from connector.devstack import Endpoints
from tests.harness import golden_records
from tests.helpers import payload
from tests.live import free_port, running

pytestmark = pytest.mark.integration


def test_callbacks_arrive_as_avro_records(make_config, records, topic, endpoints) -> None:
    config = make_config({"bandwidth-v2": {"enabled": True, "topic": topic}})
    received = payload("bandwidth_v2", "message_received_mms.json")
    statuses = payload("bandwidth_v2", "message_delivered_and_failed.json")
    before = datetime.now(UTC)
    with running(config) as base:
        first = httpx.post(f"{base}/callbacks/bandwidth-v2", content=received, timeout=30)
        second = httpx.post(f"{base}/callbacks/bandwidth-v2", content=statuses, timeout=30)
    after = datetime.now(UTC)

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    consumed = records(topic)
    assert len(consumed) == 3
    ids = [r.value["event_id"] for r in consumed]
    assert first.json()["event_ids"] + second.json()["event_ids"] == ids

    inbound = consumed[0]
    assert inbound.key == "+19195554321"
    assert inbound.headers == {
        "event_id": ids[0],
        "provider": "bandwidth-v2",
        "event_type": "received",
    }
    # Confluent wire format: magic byte 0, then the 4-byte id of the schema in the registry.
    assert inbound.raw_value[0] == 0
    value = dict(inbound.value)
    received_at = value.pop("received_at")
    assert before <= received_at <= after
    (expected,) = golden_records("bandwidth-v2", "message_received_mms")
    del expected["received_at"]
    assert value == expected

    delivered, failed = consumed[1], consumed[2]
    assert (delivered.key, failed.key) == ("+19196494865", "+19196494865")
    assert delivered.headers["event_type"] == "delivered"
    assert failed.headers["event_type"] == "failed"
    assert (failed.value["error_code"], failed.value["error_description"]) == (
        "4405",
        "rejected-unallocated-from-number",
    )
    assert failed.value["attributes"]["carrierName"] == "T-Mobile USA, Inc."
    assert delivered.value["tag"] == "campaign-42"

    # The schema is registered under the topic's subject with an explicit compatibility level.
    registry = httpx.get(f"{endpoints.registry_url}/config/{subject(topic)}", timeout=10).json()
    assert registry["compatibilityLevel"] == "BACKWARD_TRANSITIVE"


def test_refused_callback_publishes_nothing(make_config, records, topic) -> None:
    config = make_config({"bandwidth-v2": {"enabled": True, "topic": topic}})
    with running(config) as base:
        bad = httpx.post(f"{base}/callbacks/bandwidth-v2", content=b"[{]", timeout=30)
        good = httpx.post(
            f"{base}/callbacks/bandwidth-v2",
            content=payload("bandwidth_v2", "message_sending.json"),
            timeout=30,
        )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_json"
    assert good.status_code == 200
    consumed = records(topic)
    assert [r.value["event_type"] for r in consumed] == ["sending"]


def test_kafka_unreachable_is_503_not_2xx(endpoints: Endpoints, tmp_path) -> None:
    config = Config.model_validate(
        {
            # A registry that works, a broker address where nothing listens.
            "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}", "flush_timeout_seconds": 1},
            "schema_registry": {"url": endpoints.registry_url},
            "media": {"root": str(tmp_path)},
            "providers": {"bandwidth-v2": {"enabled": True, "deadline_seconds": 2}},
        }
    )
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/bandwidth-v2",
            content=payload("bandwidth_v2", "message_sending.json"),
            timeout=30,
        )
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert orjson.loads(reply.content)["error"] == "kafka_unavailable"


def test_past_max_in_flight_the_answer_is_503_with_retry_after(make_config, topic) -> None:
    import socket
    from urllib.parse import urlsplit

    config = make_config({"bandwidth-v2": {"enabled": True, "topic": topic}})
    config.server.max_in_flight = 1
    with running(config) as base:
        url = urlsplit(base)
        # A callback whose body is still arriving holds the only slot.
        slow = socket.create_connection((url.hostname, url.port))
        slow.sendall(
            b"POST /callbacks/bandwidth-v2 HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n["
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                reply = httpx.post(
                    f"{base}/callbacks/bandwidth-v2",
                    content=payload("bandwidth_v2", "message_sending.json"),
                    timeout=30,
                )
                if reply.status_code == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            slow.close()
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["error"] == "overloaded"
