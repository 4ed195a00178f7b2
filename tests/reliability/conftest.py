"""Fixtures for reliability tests: the real connector over HTTP against the real broker/registry."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.app import create_app
from connector.callback import TranslateContext
from connector.config import Config
from connector.devstack import Endpoints
from connector.providers import bandwidth_v2
from tests.helpers import callback, payload


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(config: Config) -> Iterator[str]:
    """The connector served by uvicorn in a thread, set up as `mms-connector serve` sets it up
    (no uvicorn proxy-header rewriting, no access log); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=config.kafka.flush_timeout_seconds,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("connector did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        assert not thread.is_alive(), "connector did not stop"


@dataclass
class Record:
    topic: str
    offset: int
    key: str
    headers: dict[str, str]
    value: dict[str, Any]


def read_topic(endpoints: Endpoints, topic: str, timeout: float = 30.0) -> list[Record]:
    """Every record of `topic` up to its current end, decoded through the registry."""
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": endpoints.registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer(
        {
            "bootstrap.servers": endpoints.bootstrap_servers,
            "group.id": f"test-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    out: list[Record] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return out
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends:
            assert time.monotonic() < deadline, f"{topic}: not read to its end in {timeout} s"
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(
                Record(
                    topic,
                    msg.offset(),
                    (msg.key() or b"").decode(),
                    {k: v.decode() for k, v in msg.headers() or []},
                    deserialize(msg.value(), ctx),
                )
            )
            if msg.offset() >= ends.get(msg.partition(), 0) - 1:
                ends.pop(msg.partition(), None)
    finally:
        consumer.close()
    return out


def config_for(
    endpoints: Endpoints, media_root: Path, providers: dict[str, dict[str, Any]], **top: Any
) -> Config:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": endpoints.bootstrap_servers, "flush_timeout_seconds": 10},
        "schema_registry": {"url": endpoints.registry_url},
        "media": {"root": str(media_root)},
        "providers": providers,
    }
    for key, value in top.items():
        raw[key] = {**raw.get(key, {}), **value}
    return Config.model_validate(raw)


@pytest.fixture
def topic() -> str:
    return f"mms.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def dlq_topic() -> str:
    return f"mms.test.dlq.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_config(endpoints: Endpoints, tmp_path: Path, dlq_topic: str) -> Callable[..., Config]:
    """Config on the shared test stack, with this test's own dead-letter topic."""

    def make(providers: dict[str, dict[str, Any]], **top: Any) -> Config:
        top.setdefault("dead_letters", {"topic": dlq_topic})
        return config_for(endpoints, tmp_path / "media", providers, **top)

    return make


@pytest.fixture
def records(endpoints: Endpoints) -> Callable[[str], list[Record]]:
    return lambda topic: read_topic(endpoints, topic)


def bandwidth_callback(message_id: str, event_type: str = "message-sending") -> bytes:
    """A Bandwidth v2 callback (one event) unique by its message id."""
    event = orjson.loads(payload("bandwidth_v2", "message_sending.json"))[0]
    event["type"] = event_type
    event["message"]["id"] = message_id
    return orjson.dumps([event])


def bandwidth_event_ids(body: bytes) -> list[str]:
    """What the connector must answer for this body, computed without it."""
    return [e.event_id for e in bandwidth_v2.translate(callback(body), TranslateContext())]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in /metrics text (0 when absent)."""
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return 0.0


@pytest.fixture(scope="module")
def dedicated_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Endpoints]]:
    """A Kafka + registry of this module's own, so stopping its broker disturbs no other test."""
    from connector import devstack

    if not (shutil.which("java") and shutil.which("mvn")):
        pytest.skip("a dedicated stack needs Java and Maven")
    home = tmp_path_factory.mktemp("dedicated-stack")
    try:
        yield home, devstack.up(home)
    finally:
        devstack.down(home)
