"""Avro encoding of canonical records in the Confluent wire format, through the schema registry.

Schemas are registered (and the subject's compatibility level set) once at start-up; after that
encoding is CPU only: the serializer caches the schema id, so no registry call is on the
request path.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any, cast

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

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


def subject(topic: str) -> str:
    # Confluent's default TopicNameStrategy, which consumers and tools expect.
    return f"{topic}-value"


def registry_client(settings: str | dict[str, Any]) -> SchemaRegistryClient:
    """A client from a URL or from `RegistryConfig.client_settings()`."""
    return SchemaRegistryClient({"url": settings} if isinstance(settings, str) else settings)


class Codec:
    def __init__(self, client: SchemaRegistryClient, compatibility: str) -> None:
        self._client = client
        self._compatibility = compatibility
        self._topics: dict[str, tuple[AvroSerializer, SerializationContext]] = {}

    def register(self, topic: str, schema_name: str = EVENT_SCHEMA) -> int:
        """Set the subject's compatibility level explicitly, then register the schema.

        The registry refuses a schema that breaks compatibility with earlier versions: start-up
        fails loudly instead of writing records consumers cannot read.
        """
        name = subject(topic)
        schema = current_schema(schema_name)
        self._client.set_compatibility(name, self._compatibility)
        schema_id = self._client.register_schema(name, Schema(schema, "AVRO"))
        # The client caches the registration, so the serializer's own check makes no HTTP call.
        serializer = AvroSerializer(self._client, schema)
        self._topics[topic] = (serializer, SerializationContext(topic, MessageField.VALUE))
        return schema_id

    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        """Encode for a topic registered at start-up (KeyError otherwise: a wiring bug)."""
        serializer, ctx = self._topics[topic]
        return cast(bytes, serializer(record, ctx))
