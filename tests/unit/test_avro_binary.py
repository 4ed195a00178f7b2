"""The compiled Avro writer writes fastavro's bytes for every record the schemas admit, and
refuses what they do not."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector import avro_binary
from connector.codec import DEAD_LETTER_SCHEMA, EVENT_SCHEMA, current_schema, schema_versions
from tests.records import full_event

SCHEMAS = {
    f"{name}.v{version}": json.loads(path.read_text())
    for name in (EVENT_SCHEMA, DEAD_LETTER_SCHEMA)
    for version, path in schema_versions(name).items()
}

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # no lone surrogates
_TIMES = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


def _values(schema: Any) -> st.SearchStrategy[Any]:
    """Any value `schema` admits."""
    if isinstance(schema, list):
        return st.one_of(*(_values(branch) for branch in schema))
    if isinstance(schema, str):
        return {
            "null": st.none(),
            "string": _TEXT,
            "bytes": st.binary(max_size=12),
            "int": st.integers(-(1 << 31), (1 << 31) - 1),
            "long": st.integers(-(1 << 63), (1 << 63) - 1),
        }[schema]
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-micros":
        return _TIMES
    if kind == "record":
        fields = {f["name"]: _values(f["type"]) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_values(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(_TEXT, _values(schema["values"]), max_size=3)
    return _values(kind)


def fastavro_bytes(schema: Any, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_writes_fastavros_bytes(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    record = data.draw(_values(schema))
    assert avro_binary.writer(schema)(record) == fastavro_bytes(schema, record)


def test_a_full_event_round_trips_through_fastavro() -> None:
    schema = json.loads(current_schema())
    record = full_event().to_avro()
    written = avro_binary.writer(schema)(record)
    decoded = fastavro.schemaless_reader(io.BytesIO(written), fastavro.parse_schema(schema))
    assert decoded == record


_MEDIA = {"uri": "file:///m"} | dict.fromkeys(
    ["content_type", "size", "sha256", "filename", "source_uri", "url", "status", "reason"]
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("owner", None),  # a required string
        ("owner", 12),
        ("from", b"+1919"),  # bytes where text is due
        ("event_type", "exploded"),  # not a symbol
        ("to", ["+1919", None]),
        ("segment_count", 1 << 31),  # past an int
        ("received_at", datetime(2024, 1, 1)),  # naive: no time zone
        ("attributes", {"k": 1}),
        ("media", [{**_MEDIA, "size": 1 << 63}]),  # past a long
        ("media", [{k: v for k, v in _MEDIA.items() if k != "uri"}]),  # a missing field
    ],
)
def test_refuses_a_value_the_schema_does_not_admit(field: str, value: Any) -> None:
    record = {**full_event().to_avro(), field: value}
    with pytest.raises((TypeError, ValueError, KeyError, AttributeError)):
        avro_binary.writer(json.loads(current_schema()))(record)


def test_timestamps_are_exact_to_the_microsecond() -> None:
    schema = {"type": "long", "logicalType": "timestamp-micros"}
    late = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
    for value in (late, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - timedelta(1)):
        assert avro_binary.writer(schema)(value) == fastavro_bytes(schema, value)


@pytest.mark.parametrize(
    "schema", [["string", "null"], ["null", "string", "long"], "double", {"type": "fixed"}]
)
def test_a_type_it_does_not_write_fails_when_compiled(schema: Any) -> None:
    with pytest.raises(NotImplementedError):
        avro_binary.writer(schema)
