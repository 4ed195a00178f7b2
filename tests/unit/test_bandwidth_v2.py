"""Bandwidth v2 callbacks to canonical records: the table (tests/harness.py runs it), golden
records beside the payloads in tests/payloads/bandwidth_v2/."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from connector.providers.bandwidth_v2 import NAME
from connector.record import event_id
from tests import harness
from tests.harness import Case
from tests.helpers import payload

MODULE = harness.module_of(NAME)
EVENT = orjson.loads(payload(MODULE, "message_received_mms.json"))[0]
JSON = {"Content-Type": "application/json"}


def message(**changes: object) -> bytes:
    """The documented inbound MMS with fields of its message replaced."""
    return harness.variant(
        MODULE, "message_received_mms.json", {f"0.message.{k}": v for k, v in changes.items()}
    )


TABLE = [
    # The documented inbound MMS, as every consumer must see it.
    Case("message-received MMS", file="message_received_mms.json", golden=True),
    Case("message-sending from the docs", file="message_sending.json", golden=True),
    Case(
        "delivered and failed: the failure keeps carrier, not the description twice",
        file="message_delivered_and_failed.json",
        golden=True,
    ),
    Case("group message received", file="group_message_received.json", golden=True),
    Case(
        "single object, to as a string, no owner, no text, no media",
        body='{"type":"message-received","time":"2024-01-01T00:00:00Z","message":{"id":"m1",'
        '"direction":"in","to":"+19195550002","from":"+17045551234"}}',
        fields={"owner": "+19195550002", "to": ["+19195550002"], "text": None, "media": []},
    ),
    Case(
        "numbers without plus, offset time, no default country",
        body='[{"type":"message-received","time":"2024-01-01T00:00:00+02:00","message":{"id":"m2",'
        '"owner":"9195550002","direction":"in","to":["9195550002"],"from":"17045551234",'
        '"text":"hi"}}]',
        fields={
            "owner": "9195550002",
            "from": "+17045551234",
            "occurred_at": datetime(2023, 12, 31, 22, 0, tzinfo=UTC),
        },
    ),
    Case(
        "no time, no owner on outbound, odd segmentCount",
        body='[{"type":"message-sending","message":{"id":"m3","from":"+19196494865","to":[],'
        '"segmentCount":"1","text":"Ünïcödé ✓ 🎉"}}]',
        fields={
            "owner": "+19196494865",
            "direction": "outbound",
            "occurred_at": None,
            "segment_count": None,
            "text": "Ünïcödé ✓ 🎉",
        },
    ),
    Case(
        "default country makes bare national numbers E.164",
        body='[{"type":"message-received","time":"2024-01-01T00:00:00Z","message":{"id":"m",'
        '"owner":"9195550002","direction":"in","to":["9195550002"],"from":"7045551234"}}]',
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19195550002", "from": "+17045551234", "to": ["+19195550002"]},
    ),
    Case("not json", body=b"not json", refused=("invalid_json", 400)),
    Case("empty array", body=b"[]", refused=("no_events", 400)),
    Case("not an object", body=b"[42]", refused=("invalid_event", 400)),
    Case("no message", body=b'[{"type":"message-received"}]', refused=("missing_field", 400)),
    Case(
        "unknown type",
        body=b'[{"type":"message-read","message":{"id":"x","owner":"+1"}}]',
        refused=("unknown_event_type", 400),
    ),
    Case(
        "no message id",
        body=b'[{"type":"message-received","message":{"owner":"+19195550002"}}]',
        refused=("missing_field", 400),
    ),
    Case(
        "bad time",
        body=b'[{"type":"message-received","time":"yesterday","message":{"id":"x","owner":"+1"}}]',
        refused=("invalid_time", 400),
    ),
    Case("deep nesting", body=b"[" * 100 + b"]" * 100, refused=("json_too_deep", 400)),
    # Hostile input (issue 9): each failed on the code before commit b25f525.
    Case(
        "10 MB of [{},{},...] refused before parsing",
        body=b"[" + b"{}," * 3_000_000 + b"{}]",
        headers=JSON,
        refused=("too_many_elements", 413),
    ),
    Case(
        "one event past the default events budget",
        body=orjson.dumps([EVENT] * 101),
        headers=JSON,
        refused=("too_many_events", 413),
    ),
    Case(
        "one medium past the default media budget",
        body=message(media=["https://m.example/a.jpg"] * 51),
        headers=JSON,
        refused=("too_many_media", 413),
    ),
    Case(
        "100,000 recipients made a record Kafka refused (here: 101, past the default)",
        body=message(to=["+15555550100"] * 101),
        headers=JSON,
        refused=("too_many_recipients", 413),
    ),
    Case(
        "a unit separator in an id could collide with another event's id",
        body=message(id="m-1\x1fx"),
        headers=JSON,
        refused=("invalid_id", 400),
    ),
    Case("blank owner", body=message(owner=" "), headers=JSON, refused=("missing_field", 400)),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_come_from_the_message_and_are_stable_across_retries() -> None:
    translate = harness.Translator(NAME)
    [inbound] = translate(payload(MODULE, "message_received_mms.json"))
    assert inbound.event_id == event_id(
        NAME,
        "1710428966534ia3vkyfcpd4bf7sk",
        "+19195554321",
        "message-received",
        "2024-03-14T15:09:26.535Z",
    )
    body = payload(MODULE, "message_delivered_and_failed.json")
    first = [e.event_id for e in translate(body)]
    assert first == [e.event_id for e in translate(body)]
    assert len(set(first)) == 2
