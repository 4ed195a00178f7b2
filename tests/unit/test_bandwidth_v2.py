"""Bandwidth v2 callbacks to canonical records, table-driven over realistic payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.callback import Refusal, TranslateContext
from connector.providers.bandwidth_v2 import PROVIDER
from connector.record import Media, event_id
from tests.helpers import CTX, RECEIVED_AT, callback, payload


def translate(body: bytes | str, ctx: TranslateContext = CTX):
    return PROVIDER.translate(callback(body), ctx)


# The documented inbound MMS, as every consumer must see it (received_at aside).
INBOUND_MMS_RECORD = {
    "event_id": event_id(
        "bandwidth-v2",
        "1710428966534ia3vkyfcpd4bf7sk",
        "+19195554321",
        "message-received",
        "2024-03-14T15:09:26.535Z",
    ),
    "provider": "bandwidth-v2",
    "event_type": "received",
    "direction": "inbound",
    "owner": "+19195554321",
    "from": "+17045551234",
    "to": ["+19195554321"],
    "cc": [],
    "bcc": [],
    "text": "Here's the photo 📷 from Saturday",
    "subject": None,
    "media": [
        {
            "uri": "https://messaging.bandwidth.com/api/v2/users/5559876/media/"
            "14762070468292kw2fuqty55yp2b2/0/IMG_4021.jpg",
            "content_type": None,
            "size": None,
            "sha256": None,
            "filename": "IMG_4021.jpg",
            "source_uri": None,
            "url": None,
            "status": "provider",
            "reason": None,
        },
        {
            "uri": "https://messaging.bandwidth.com/api/v2/users/5559876/media/"
            "14762070468292kw2fuqty55yp2b2/1/smil.xml",
            "content_type": None,
            "size": None,
            "sha256": None,
            "filename": "smil.xml",
            "source_uri": None,
            "url": None,
            "status": "provider",
            "reason": None,
        },
    ],
    "provider_message_id": "1710428966534ia3vkyfcpd4bf7sk",
    "application_id": "93de2206-9669-4e07-948d-329f4b722ee2",
    "tag": None,
    "occurred_at": datetime(2024, 3, 14, 15, 9, 26, 535000, tzinfo=UTC),
    "segment_count": 1,
    "error_code": None,
    "error_description": None,
    "attributes": {
        "description": "Incoming message received",
        "to": "+19195554321",
        "message.time": "2024-03-14T15:09:26.526Z",
    },
}


def test_inbound_mms_every_field() -> None:
    [event] = translate(payload("bandwidth_v2", "message_received_mms.json"))
    assert event.to_avro() == {**INBOUND_MMS_RECORD, "received_at": RECEIVED_AT}


CASES = [
    # (payload file, expected per event: type, direction, owner, from, to, text, error, extra)
    (
        "message_sending.json",
        [("sending", "outbound", "+19196494865", "+19196494865", ["+19842397270"], None, None)],
    ),
    (
        "message_delivered_and_failed.json",
        [
            ("delivered", "outbound", "+19196494865", "+19196494865", ["+19842397270"], None, None),
            (
                "failed",
                "outbound",
                "+19196494865",
                "+19196494865",
                ["+12345678902"],
                None,
                ("4405", "rejected-unallocated-from-number"),
            ),
        ],
    ),
    (
        "group_message_received.json",
        [
            (
                "received",
                "inbound",
                "+19195550002",
                "+17045551234",
                ["+19195550001", "+19195550002", "+13365550003"],
                None,
                None,
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_payload_files(name: str, expected: list[tuple]) -> None:
    events = translate(payload("bandwidth_v2", name))
    got = [
        (
            e.event_type,
            e.direction,
            e.owner,
            e.from_,
            e.to,
            e.text,
            (e.error_code, e.error_description) if e.error_code else None,
        )
        for e in events
    ]
    assert got == expected


def test_failed_event_keeps_carrier_and_not_description_twice() -> None:
    events = translate(payload("bandwidth_v2", "message_delivered_and_failed.json"))
    delivered, failed = events
    assert failed.attributes["carrierName"] == "T-Mobile USA, Inc."
    assert "description" not in failed.attributes
    assert delivered.attributes["description"] == "Message delivered to carrier."
    assert delivered.attributes["message.priority"] == "high"
    assert delivered.tag == "campaign-42"
    assert failed.media == []
    assert delivered.event_id != failed.event_id


def test_sending_event_from_the_docs() -> None:
    [event] = translate(payload("bandwidth_v2", "message_sending.json"))
    assert event.media == [
        Media(
            "https://s3.amazonaws.com/tpensyl/catapult.jpg",
            filename="catapult.jpg",
            status="provider",
        )
    ]
    assert (event.tag, event.segment_count) == ("v2 lab", 1)
    assert event.occurred_at == datetime(2020, 6, 25, 18, 42, 36, 979000, tzinfo=UTC)


def test_event_id_is_stable_across_retries_and_distinct_per_event() -> None:
    body = payload("bandwidth_v2", "message_delivered_and_failed.json")
    first = [e.event_id for e in translate(body)]
    again = [e.event_id for e in PROVIDER.translate(callback(body), CTX)]
    assert first == again
    assert len(set(first)) == 2


UGLY = [
    pytest.param(
        '{"type":"message-received","time":"2024-01-01T00:00:00Z","message":{"id":"m1",'
        '"direction":"in","to":"+19195550002","from":"+17045551234"}}',
        {"owner": "+19195550002", "to": ["+19195550002"], "text": None, "media": []},
        id="single object, to as a string, no owner, no text, no media",
    ),
    pytest.param(
        '[{"type":"message-received","time":"2024-01-01T00:00:00+02:00","message":{"id":"m2",'
        '"owner":"9195550002","direction":"in","to":["9195550002"],"from":"17045551234",'
        '"text":"hi"}}]',
        {
            "owner": "9195550002",
            "from": "+17045551234",
            "occurred_at": datetime(2023, 12, 31, 22, 0, tzinfo=UTC),
        },
        id="numbers without plus, offset time, no default country",
    ),
    pytest.param(
        '[{"type":"message-sending","message":{"id":"m3","from":"+19196494865","to":[],'
        '"segmentCount":"1","text":"Ünïcödé ✓ 🎉"}}]',
        {
            "owner": "+19196494865",
            "direction": "outbound",
            "occurred_at": None,
            "segment_count": None,
            "text": "Ünïcödé ✓ 🎉",
        },
        id="no time, no owner on outbound, odd segmentCount",
    ),
]


@pytest.mark.parametrize(("body", "expected"), UGLY)
def test_ugly_payloads(body: str, expected: dict[str, object]) -> None:
    [event] = translate(body)
    record = event.to_avro()
    assert {k: record[k] for k in expected} == expected


def test_default_country_makes_bare_national_numbers_e164() -> None:
    body = (
        '[{"type":"message-received","time":"2024-01-01T00:00:00Z","message":{"id":"m",'
        '"owner":"9195550002","direction":"in","to":["9195550002"],"from":"7045551234"}}]'
    )
    [event] = translate(body, TranslateContext(default_country="US"))
    assert event.owner == "+19195550002"
    assert (event.from_, event.to) == ("+17045551234", ["+19195550002"])
    assert event.attributes["raw.owner"] == "9195550002"
    assert event.attributes["raw.to"] == '["9195550002"]'


REFUSED = [
    pytest.param(b"not json", "invalid_json", id="not json"),
    pytest.param(b"[]", "no_events", id="empty array"),
    pytest.param(b"[42]", "invalid_event", id="not an object"),
    pytest.param(b'[{"type":"message-received"}]', "missing_field", id="no message"),
    pytest.param(
        b'[{"type":"message-read","message":{"id":"x","owner":"+1"}}]',
        "unknown_event_type",
        id="unknown type",
    ),
    pytest.param(
        b'[{"type":"message-received","message":{"owner":"+19195550002"}}]',
        "missing_field",
        id="no message id",
    ),
    pytest.param(
        b'[{"type":"message-received","time":"yesterday","message":{"id":"x","owner":"+1"}}]',
        "invalid_time",
        id="bad time",
    ),
    pytest.param(b"[" * 100 + b"]" * 100, "json_too_deep", id="deep nesting"),
]


@pytest.mark.parametrize(("body", "code"), REFUSED)
def test_refusals_name_the_problem(body: bytes, code: str) -> None:
    with pytest.raises(Refusal) as info:
        translate(body)
    assert info.value.code == code
    reply = PROVIDER.refused(info.value)
    assert reply.status == 400
    assert code.encode() in reply.body
