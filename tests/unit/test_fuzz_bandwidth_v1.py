"""Property: whatever the bytes, the Bandwidth v1 parser refuses cleanly or yields records that
encode with the canonical Avro schema (a record that does not encode would be a 500)."""

from __future__ import annotations

import io
import json
from datetime import timedelta, timezone
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.callback import Callback, Provider, Refusal
from connector.codec import current_schema
from connector.providers.bandwidth_v1 import PROVIDER
from tests.helpers import CTX, PAYLOADS, callback

SCHEMA = fastavro.parse_schema(json.loads(current_schema()))
BODIES = [f.read_bytes() for f in sorted((PAYLOADS / "bandwidth_v1").glob("*.json"))]
OBJECTS = [json.loads(b) for b in BODIES]
SETTINGS = settings(max_examples=300, deadline=None)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
OFFSETS = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
# Edge values get a branch of their own: drawn among all timestamps they would be too rare.
TIMES = (
    st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
    | st.sampled_from(["2024-02-29T23:59:59.999999Z", "2015-08-04 21:50:12", "20150804T215012Z",
                       "2015-08-04T21:50:12.5+0530", "", " "])
    | st.builds(lambda at, tz: at.replace(tzinfo=tz).isoformat(), st.datetimes(), OFFSETS)
)  # fmt: skip
COUNTS = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1]) | st.integers()
NUMBERS = st.sampled_from(
    ["+19195551000", "19195551000", "9195551000", "28444", "+1 (919) 555-1000", "+", "", "٣٣٣",
     "+447700900123", "1" * 40]
) | st.text("+0123456789 -()", max_size=20)  # fmt: skip
URLS = st.sampled_from(
    ["https://h.example/a/b.jpg", "https://h.example/", "https://h.example", "b.jpg", "",
     "https://h.example/%ed%a0%80.png", "https://h.example/a?x=/y.png#f"]
) | st.text(max_size=30)  # fmt: skip


FIELD_VALUES = {
    "eventType": st.sampled_from(["mms", "sms", "MMS", ""]),
    "direction": st.sampled_from(["in", "out", "IN", "inbound", ""]),
    "state": st.sampled_from(["received", "queued", "sending", "sent", "error", "accepted", ""]),
    "deliveryState": st.sampled_from(["waiting", "delivered", "not-delivered", "unknown", ""]),
    "deliveryCode": COUNTS | st.sampled_from(["0", "000", "720", "999", " ", "-0", "x"]),
    "deliveryDescription": st.text(),
    "time": TIMES,
    "segmentCount": COUNTS,
    "to": NUMBERS | st.lists(NUMBERS, max_size=4),
    "from": NUMBERS,
    "media": st.lists(URLS, max_size=25) | URLS,
    "text": st.text(),
    "messageId": st.text() | st.integers(),
    "applicationId": st.text() | st.integers(),
    "tag": st.text(),
    "messageUri": URLS,
}


def assert_refuses_or_encodes(provider: Provider, cb: Callback) -> None:
    try:
        events = provider.translate(cb, CTX)
    except Refusal:
        return
    for event in events:
        fastavro.schemaless_writer(io.BytesIO(), SCHEMA, event.to_avro())


def mutate(
    original: dict[str, Any], field_values: dict[str, Any], data: st.DataObject, *, deletions: int
) -> dict[str, Any]:
    """A valid object with up to `deletions` fields deleted and a few given other values."""
    obj = dict(original)
    for key in data.draw(st.lists(st.sampled_from(sorted(obj)), max_size=deletions)):
        obj.pop(key, None)
    for key in data.draw(st.lists(st.sampled_from(sorted(field_values)), min_size=1, max_size=4)):
        obj[key] = data.draw(field_values[key])
    return obj


def check(body: bytes) -> None:
    assert_refuses_or_encodes(PROVIDER, callback(body, {"Content-Type": "application/json"}))


@SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes(body: bytes) -> None:
    check(body)


@SETTINGS
@given(
    st.sampled_from(BODIES),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_byte_flips(body: bytes, flips: list[tuple[int, int]]) -> None:
    mutated = bytearray(body)
    for index, mask in flips:
        mutated[index % len(mutated)] ^= mask
    check(bytes(mutated))


@SETTINGS
@given(st.sampled_from(BODIES), st.integers(min_value=0))
def test_truncation(body: bytes, length: int) -> None:
    check(body[: length % len(body)])


@SETTINGS
@given(st.sampled_from(OBJECTS), st.data())
def test_fields_deleted_or_given_junk(original: dict[str, Any], data: st.DataObject) -> None:
    junk = dict.fromkeys(FIELD_VALUES, JSON_VALUES)
    check(json.dumps(mutate(original, junk, data, deletions=2)).encode())


@SETTINGS
@given(st.sampled_from(OBJECTS), st.data())
def test_fields_given_edge_values(original: dict[str, Any], data: st.DataObject) -> None:
    # Values of the right shape get past the first checks, so accepted records are tested too.
    check(json.dumps(mutate(original, FIELD_VALUES, data, deletions=0)).encode())
