"""The real connector and the real broker, for integration and reliability tests."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext
from obstore.store import S3Store

from connector.codec import avro_deserializer, registry_client
from connector.config import Config
from connector.devstack import Endpoints
from connector.server import uvicorn_config


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
    server = uvicorn.Server(uvicorn_config(config, "127.0.0.1", port))
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
    raw_value: bytes


def read_topic(endpoints: Endpoints, topic: str, timeout: float = 30.0) -> list[Record]:
    """Every record of `topic` up to its current end, decoded through the registry."""
    deserialize = avro_deserializer(registry_client(endpoints.registry_url))
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
                    msg.value(),
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


S3_KEY_ID_VAR, S3_SECRET_VAR = "MMS_T_S3_KEY_ID", "MMS_T_S3_SECRET"


def s3_media(endpoints: Endpoints, prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The `media.s3` block for the tests' S3 server under `prefix`, and the environment its
    key references need (none when the server takes the client's default chain)."""
    settings: dict[str, Any] = {
        "bucket": endpoints.s3_bucket,
        "endpoint_url": endpoints.s3_endpoint_url,
        "prefix": prefix,
    }
    if not (endpoints.s3_access_key_id and endpoints.s3_secret_access_key):
        return settings, {}
    settings["access_key_id"] = {"env": S3_KEY_ID_VAR}
    settings["secret_access_key"] = {"env": S3_SECRET_VAR}
    env = {S3_KEY_ID_VAR: endpoints.s3_access_key_id, S3_SECRET_VAR: endpoints.s3_secret_access_key}
    return settings, env


def s3_bucket(endpoints: Endpoints) -> S3Store:
    """An independent client on the tests' bucket: what a consumer sees."""
    assert endpoints.s3_bucket, "no S3 server"
    credentials = (
        {
            "access_key_id": endpoints.s3_access_key_id,
            "secret_access_key": endpoints.s3_secret_access_key,
        }
        if endpoints.s3_access_key_id
        else {}
    )
    return S3Store(
        endpoints.s3_bucket,
        endpoint=endpoints.s3_endpoint_url,
        region="us-east-1",
        client_options={"allow_http": True},
        **credentials,
    )


def shared_window(
    redis_url: str, password_var: str, **settings: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """`dedupe.shared` for the tests' Redis, and the environment it needs: the connector wants
    no credentials in the URL, so the password moves to `password_var`."""
    parts = urlsplit(redis_url)
    shared: dict[str, Any] = {"url": f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}"}
    if not parts.password:
        return {**shared, **settings}, {}
    return {**shared, "password": {"env": password_var}, **settings}, {password_var: parts.password}


def serve_config(
    path: Path, endpoints: Endpoints, port: int, topic: str, **top: dict[str, Any]
) -> Path:
    """A config file for `mms-connector serve` on 127.0.0.1:`port`: bandwidth-v2 open on
    `topic`, media beside the file; sections in `top` merged over these."""
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": endpoints.bootstrap_servers},
        "schema_registry": {"url": endpoints.registry_url},
        "server": {"host": "127.0.0.1", "port": port},
        "media": {"root": str(path.parent / "media")},
        "providers": {
            "bandwidth-v2": {"enabled": True, "topic": topic, "auth": {"unauthenticated": True}}
        },
    }
    for key, value in top.items():
        raw[key] = {**raw.get(key, {}), **value}
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path
