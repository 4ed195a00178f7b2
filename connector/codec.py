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

SCHEMA_NAME = "mms_event"


def schema_dir() -> Path:
    # The repo's schemas/ in a checkout; images set MMS_SCHEMA_DIR to where they copied it.
    return Path(os.environ.get("MMS_SCHEMA_DIR") or Path(__file__).resolve().parents[1] / "schemas")


def schema_versions(directory: Path | None = None) -> dict[int, Path]:
    """Every version of the canonical schema, keyed by the version in its file name."""
    found = {}
    for path in (directory or schema_dir()).glob(f"{SCHEMA_NAME}.v*.avsc"):
        if m := re.fullmatch(rf"{SCHEMA_NAME}\.v(\d+)\.avsc", path.name):
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


@cache
def current_schema() -> str:
    """The newest schema version: what this build writes."""
    versions = schema_versions()
    if not versions:
        raise FileNotFoundError(f"no {SCHEMA_NAME}.v*.avsc in {schema_dir()}")
    return Path(versions[max(versions)]).read_text()


def subject(topic: str) -> str:
    # Confluent's default TopicNameStrategy, which consumers and tools expect.
    return f"{topic}-value"


def registry_client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url})


class Codec:
    def __init__(self, client: SchemaRegistryClient, compatibility: str) -> None:
        self._client = client
        self._compatibility = compatibility
        self._schema = current_schema()
        self._serializer = AvroSerializer(client, self._schema)
        self._contexts: dict[str, SerializationContext] = {}

    def register(self, topic: str) -> int:
        """Set the subject's compatibility level explicitly, then register the schema.

        The registry refuses a schema that breaks compatibility with earlier versions: start-up
        fails loudly instead of writing records consumers cannot read.
        """
        name = subject(topic)
        self._client.set_compatibility(name, self._compatibility)
        schema_id = self._client.register_schema(name, Schema(self._schema, "AVRO"))
        self._contexts[topic] = SerializationContext(topic, MessageField.VALUE)
        return schema_id

    def encode(self, topic: str, record: dict[str, Any]) -> bytes:
        ctx = self._contexts.get(topic) or SerializationContext(topic, MessageField.VALUE)
        return cast(bytes, self._serializer(record, ctx))
