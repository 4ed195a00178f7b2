"""Avro encoding of canonical records in the Confluent wire format, through the schema registry.

Schemas are registered (and the subject's compatibility level set) once at start-up; after that
encoding is CPU only: the schema compiled once (connector/avro_binary.py), behind the
Confluent framing (magic byte 0, the 4-byte registry id). No registry call on the request path.
Confluent's AvroSerializer and fastavro's writer write the same bytes, with a per-record cost
that showed in profiles (bench/results).
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector import avro_binary

log = logging.getLogger(__name__)

EVENT_SCHEMA = "mms_event"
DEAD_LETTER_SCHEMA = "dead_letter"


def schema_dir() -> Path:
    # The repo's schemas/ in a checkout; images set MMS_SCHEMA_DIR to where they copied it.
    return Path(os.environ.get("MMS_SCHEMA_DIR") or Path(__file__).resolve().parents[1] / "schemas")


def schema_versions(name: str = EVENT_SCHEMA) -> dict[int, Path]:
    """Every version of a schema, keyed by the version in its file name."""
    found = {}
    for path in schema_dir().glob(f"{name}.v*.avsc"):
        if m := re.fullmatch(rf"{name}\.v(\d+)\.avsc", path.name):
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


@cache
def current_schema(name: str = EVENT_SCHEMA) -> str:
    """The newest version of a schema: what this build writes."""
    versions = schema_versions(name)
    if not versions:
        raise FileNotFoundError(f"no {name}.v*.avsc in {schema_dir()}")
    return versions[max(versions)].read_text()


@cache
def _encoder(name: str) -> Callable[[Any], bytes]:
    return avro_binary.writer(json.loads(current_schema(name)))


def avro_payload(record: dict[str, Any], schema_name: str = EVENT_SCHEMA) -> bytes:
    """The Avro binary of a record in the newest schema, without the wire format's framing."""
    return _encoder(schema_name)(record)


# Magic byte and schema id, before every value (Confluent wire format).
FRAMING_BYTES = 5


def avro_deserializer(registry: SchemaRegistryClient) -> AvroDeserializer:
    """Reads what the connector wrote: the schema id in each record, subjects by topic name.

    The deserializer's default strategy first asks the registry for Confluent Cloud
    "associations" of the topic: an extra request a plain registry answers 404, and one that
    hung a test run forever on a stale keep-alive connection.
    """
    # Annotated: mypy types the constructor's result Any (the class sets `__init__ = __init_impl`).
    deserializer: AvroDeserializer = AvroDeserializer(
        registry, conf={"subject.name.strategy": topic_subject_name_strategy}
    )
    return deserializer


def subject(topic: str) -> str:
    # Confluent's default TopicNameStrategy, which consumers and tools expect.
    return f"{topic}-value"


def registry_client(settings: str | dict[str, Any]) -> SchemaRegistryClient:
    """A client from a URL (with a 30 s timeout: the client's own is none, i.e. wait forever)
    or from `RegistryConfig.client_settings()`."""
    conf = {"url": settings, "timeout": 30} if isinstance(settings, str) else settings
    return SchemaRegistryClient(conf)


class RegistryUnavailable(Exception):
    """The schema registry did not answer within the start-up patience."""


def _transient(exc: Exception) -> bool:
    # Not answering (connection refused, timeouts) or failing on its side (5xx); a 4xx (an
    # incompatible schema, bad credentials) is an answer: waiting would not change it.
    status = exc.http_status_code if isinstance(exc, SchemaRegistryError) else None
    return status is None or status >= 500


class Codec:
    def __init__(
        self, client: SchemaRegistryClient, compatibility: str, patience_seconds: float = 0.0
    ) -> None:
        self._client = client
        self._compatibility = compatibility
        # How long register() waits for a registry that is not answering yet (a first install
        # starts the connector with its registry): within the pod's start-up probe budget.
        self._patience = patience_seconds
        self._topics: dict[str, tuple[bytes, str]] = {}  # framing and schema name

    def register(self, topic: str, schema_name: str = EVENT_SCHEMA) -> int:
        """Set the subject's compatibility level explicitly, then register the schema; while the
        registry does not answer, retry with backoff for the patience given, then raise
        RegistryUnavailable.

        The registry refuses a schema that breaks compatibility with earlier versions: start-up
        fails loudly instead of writing records consumers cannot read.
        """
        deadline = time.monotonic() + self._patience
        delay = 0.5
        while True:
            try:
                return self._register(topic, schema_name)
            except Exception as exc:
                if not _transient(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RegistryUnavailable(
                        f"schema registry not answering after {self._patience:g} s: {exc}"
                    ) from exc
                wait = min(delay, left)
                log.warning("schema registry not answering (%s); retrying in %.1f s", exc, wait)
                time.sleep(wait)
                delay = min(delay * 2, 5.0)

    def _register(self, topic: str, schema_name: str) -> int:
        name = subject(topic)
        schema = current_schema(schema_name)
        self._set_compatibility(name)
        schema_id = self._client.register_schema(name, Schema(schema, "AVRO"))
        self._topics[topic] = (struct.pack(">bI", 0, schema_id), schema_name)
        return schema_id

    def _set_compatibility(self, name: str) -> None:
        """The subject's level as configured, safe when replicas start together: Apicurio
        answers the second of two concurrent first writes 409 "A rule named 'COMPATIBILITY'
        already exists" (6 of 10 rounds of six threads on a fresh subject); the rule exists by
        then, so writing again updates it."""
        try:
            current: str | None = self._client.get_compatibility(name)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:  # 404: a subject the registry has not seen
                raise
            current = None
        if current == self._compatibility:
            return
        if current is not None:
            log.warning("%s: compatibility %s set to %s", name, current, self._compatibility)
        try:
            self._client.set_compatibility(name, self._compatibility)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 409:
                raise
            self._client.set_compatibility(name, self._compatibility)

    def frame(self, topic: str, payload: bytes) -> bytes:
        """A payload (`avro_payload`) in the wire format of a topic registered at start-up
        (KeyError otherwise: a wiring bug)."""
        return self._topics[topic][0] + payload

    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        """A record in the wire format, in the schema its topic was registered with."""
        framing, schema_name = self._topics[topic]
        return framing + avro_payload(record, schema_name)
