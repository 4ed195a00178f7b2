"""The canonical schema files: versions, docs, and that every record we build encodes."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from connector.codec import DEAD_LETTER_SCHEMA, EVENT_SCHEMA, current_schema, schema_versions
from connector.record import Media, MmsEvent
from tests.helpers import RECEIVED_AT

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


@pytest.mark.parametrize("older", [v for v in VERSIONS if v < max(VERSIONS)] or [None])
def test_newest_reads_what_older_versions_wrote(older: int | None) -> None:
    if older is None:
        pytest.skip("only one schema version so far")
    writer = fastavro.parse_schema(json.loads(VERSIONS[older].read_text()))
    reader = fastavro.parse_schema(json.loads(current_schema()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, writer, full_event().to_avro())
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, writer, reader)["event_id"] == "e"


def full_event() -> MmsEvent:
    return MmsEvent(
        event_id="e",
        provider="bandwidth-v2",
        event_type="failed",
        direction="outbound",
        owner="+19195550002",
        received_at=RECEIVED_AT,
        from_="+19195550002",
        to=["+17045551234"],
        cc=["+17045551235"],
        bcc=["+19195550002"],
        text="hi",
        subject="s",
        media=[Media("file:///x", "image/png", 10, "ab" * 32, "x.png")],
        provider_message_id="m",
        application_id="a",
        tag="t",
        occurred_at=RECEIVED_AT,
        segment_count=1,
        error_code="4405",
        error_description="rejected",
        attributes={"k": "v"},
    )


def test_a_full_record_round_trips_through_avro() -> None:
    schema = fastavro.parse_schema(json.loads(current_schema()))
    record = full_event().to_avro()
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, schema) == record


def test_to_avro_writes_exactly_the_schema_fields() -> None:
    schema = json.loads(current_schema())
    assert list(full_event().to_avro()) == [f["name"] for f in schema["fields"]]
