"""The canonical schema files: versions, docs, and that every record we build encodes."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from connector.codec import DEAD_LETTER_SCHEMA, EVENT_SCHEMA, current_schema, schema_versions
from tests.records import full_event, media_fields, media_items, projected

VERSIONS = schema_versions()


SCHEMAS = [EVENT_SCHEMA, DEAD_LETTER_SCHEMA]


@pytest.mark.parametrize("name", SCHEMAS)
def test_versions_are_numbered_from_one_without_gaps(name: str) -> None:
    versions = schema_versions(name)
    assert list(versions) == list(range(1, len(versions) + 1))
    for number, path in versions.items():
        assert json.loads(path.read_text())["version"] == number


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_field_is_documented(name: str) -> None:
    schema = json.loads(current_schema(name))
    # Field names and docs are the contract downstream teams read.
    assert [f["name"] for f in schema["fields"] if not f.get("doc")] == []


OLDER = [v for v in VERSIONS if v < max(VERSIONS)]


def test_there_are_older_versions_to_check() -> None:
    # v2 exists: the compatibility checks below must run, not skip on an empty list.
    assert OLDER


def parsed(version: int) -> Any:
    return fastavro.parse_schema(json.loads(VERSIONS[version].read_text()))


def resolve(record: dict[str, Any], writer: Any, reader: Any) -> dict[str, Any]:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, writer, reader)


@pytest.mark.parametrize("older", OLDER)
def test_newest_reads_what_older_versions_wrote(older: int) -> None:
    """BACKWARD: what older producers wrote (still on the topic) decodes in the newest schema,
    the fields they did not have at their defaults."""
    old, new = (json.loads(VERSIONS[v].read_text()) for v in (older, max(VERSIONS)))
    written = projected(full_event().to_avro(), old)
    read = resolve(written, parsed(older), parsed(max(VERSIONS)))
    assert read == projected(written, new)
    assert read["media"][0]["status"] is None


@pytest.mark.parametrize("older", OLDER)
def test_older_readers_read_what_newest_writes(older: int) -> None:
    """Consumers still on an older schema keep working: Avro resolution skips the new fields."""
    record = full_event().to_avro()
    read = resolve(record, parsed(max(VERSIONS)), parsed(older))
    assert read == projected(record, json.loads(VERSIONS[older].read_text()))


def test_v2_media_gain_mirroring_fields_with_null_defaults() -> None:
    v1, v2 = (json.loads(VERSIONS[v].read_text()) for v in (1, 2))
    kept, added = media_items(v2)[: len(media_items(v1))], media_items(v2)[len(media_items(v1)) :]
    # v1's fields as they were: only docs were added to them.
    assert [without_doc(f) for f in kept] == [without_doc(f) for f in media_items(v1)]
    assert [(f["name"], f["type"], f["default"]) for f in added] == [
        ("source_uri", ["null", "string"], None),
        ("url", ["null", "string"], None),
        ("status", ["null", "string"], None),
        ("reason", ["null", "string"], None),
    ]
    # The record's full name is its identity for readers: a new namespace would not resolve.
    assert (v2["namespace"], v2["name"]) == (v1["namespace"], v1["name"])


def without_doc(field: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in field.items() if k != "doc"}


def test_every_media_field_is_documented() -> None:
    assert [f["name"] for f in media_items(json.loads(current_schema())) if not f.get("doc")] == []


def test_a_full_record_round_trips_through_avro() -> None:
    schema = fastavro.parse_schema(json.loads(current_schema()))
    record = full_event().to_avro()
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, schema) == record


def test_to_avro_writes_exactly_the_schema_fields() -> None:
    schema = json.loads(current_schema())
    record = full_event().to_avro()
    assert list(record) == [f["name"] for f in schema["fields"]]
    media = full_event().media
    assert record["media"] == [{k: getattr(m, k) for k in media_fields(schema)} for m in media]
