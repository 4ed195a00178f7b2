"""Schema versions against the real registry: each is accepted after the previous ones."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.codec import (
    DEAD_LETTER_SCHEMA,
    EVENT_SCHEMA,
    Codec,
    registry_client,
    schema_versions,
    subject,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("schema", [EVENT_SCHEMA, DEAD_LETTER_SCHEMA])
def test_versions_register_in_order_under_backward_transitive(endpoints, schema: str) -> None:
    client = registry_client(endpoints.registry_url)
    name = f"schema-check-{uuid.uuid4().hex[:8]}-value"
    client.set_compatibility(name, "BACKWARD_TRANSITIVE")
    ids = [
        client.register_schema(name, Schema(path.read_text(), "AVRO"))
        for path in schema_versions(schema).values()
    ]
    assert len(set(ids)) == len(ids)


def test_registry_refuses_an_incompatible_change(endpoints) -> None:
    client = registry_client(endpoints.registry_url)
    topic = f"compat-{uuid.uuid4().hex[:8]}"
    Codec(client, "BACKWARD_TRANSITIVE").register(topic)
    newest = json.loads(list(schema_versions().values())[-1].read_text())
    # A new required field without a default breaks every existing reader's data.
    newest["fields"].append({"name": "breaking", "type": "string"})
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema(subject(topic), Schema(json.dumps(newest), "AVRO"))
    assert info.value.http_status_code == 409


def test_codec_writes_what_confluents_serializer_writes(endpoints) -> None:
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from tests.unit.test_schema import full_event

    client = registry_client(endpoints.registry_url)
    topic = f"wire-{uuid.uuid4().hex[:8]}"
    codec = Codec(client, "BACKWARD_TRANSITIVE")
    codec.register(topic)
    record = full_event().to_avro()
    serializer = AvroSerializer(client, list(schema_versions().values())[-1].read_text())
    reference = serializer(record, SerializationContext(topic, MessageField.VALUE))
    assert codec.encode(topic, record) == reference
