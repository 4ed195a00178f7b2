"""Run the real connector (uvicorn on a loopback port) against the real broker and registry."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from connector.app import create_app
from connector.codec import registry_client
from connector.config import Config
from connector.devstack import Endpoints

pytestmark = pytest.mark.integration


@dataclass
class Consumed:
    key: str
    headers: dict[str, str]
    value: dict[str, Any]
    raw_value: bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(config: Config) -> Iterator[str]:
    """The connector served by uvicorn in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
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


@pytest.fixture
def topic() -> str:
    return f"mms.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_config(endpoints: Endpoints, tmp_path) -> Callable[..., Config]:
    def make(providers: dict[str, dict[str, Any]]) -> Config:
        return Config.model_validate(
            {
                "kafka": {"bootstrap_servers": endpoints.bootstrap_servers},
                "schema_registry": {"url": endpoints.registry_url},
                "media": {"root": str(tmp_path / "media")},
                "providers": providers,
            }
        )

    return make


@pytest.fixture
def consume(endpoints: Endpoints) -> Callable[..., list[Consumed]]:
    deserialize = AvroDeserializer(registry_client(endpoints.registry_url))

    def read(topic: str, count: int, timeout: float = 30.0) -> list[Consumed]:
        consumer = Consumer(
            {
                "bootstrap.servers": endpoints.bootstrap_servers,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        out: list[Consumed] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                ctx = SerializationContext(topic, MessageField.VALUE)
                out.append(
                    Consumed(
                        key=msg.key().decode(),
                        headers={k: v.decode() for k, v in msg.headers() or []},
                        value=deserialize(msg.value(), ctx),
                        raw_value=msg.value(),
                    )
                )
        finally:
            consumer.close()
        return out

    return read
