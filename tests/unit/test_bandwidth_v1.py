"""Bandwidth v1 (Catapult) callbacks to canonical records, table-driven over realistic payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.callback import Refusal, TranslateContext
from connector.providers.bandwidth_v1 import PROVIDER
from connector.record import Media, event_id
from tests.helpers import CTX, RECEIVED_AT, callback, fields, payload

CATAPULT = "https://api.catapult.inetwork.com/v1/users/u-2oulzbvr6uwoy3hp4gfyz3a"
DELETE = object()


def translate(body: bytes | str, ctx: TranslateContext = CTX):
    return PROVIDER.translate(callback(body, {"Content-Type": "application/json"}), ctx)


def variant(name: str, changes: dict[str, Any]) -> str:
    """A payload file with some fields replaced (DELETE removes one)."""
    data = json.loads(payload("bandwidth_v1", name))
    for key, value in changes.items():
        if value is DELETE:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data, ensure_ascii=False)


def test_inbound_mms_every_field() -> None:
    # The documented inbound example, made valid JSON.
    [event] = translate(payload("bandwidth_v1", "inbound_mms.json"))
    assert event.to_avro() == {
        "event_id": event_id(
            "bandwidth-v1", "m-dr4mcch2wfb6frcls677glq", "received", None, "2015-08-04T21:50:12Z"
        ),
        "provider": "bandwidth-v1",
        "event_type": "received",
        "direction": "inbound",
        "owner": "+12534483100",
        "from": "+15035555555",
        "to": ["+12534483100"],
        "cc": [],
        "bcc": [],
        "text": "Hello MMS!",
        "subject": None,
        "media": [
            {
                "uri": f"{CATAPULT}/media/m-dr4mcch2wfb6frcls677glq-1.jpg",
                "content_type": None,
                "size": None,
                "sha256": None,
                "filename": "m-dr4mcch2wfb6frcls677glq-1.jpg",
                "source_uri": None,
                "url": None,
                "status": "provider",
                "reason": None,
            },
            {
                "uri": f"{CATAPULT}/media/m-dr4mcch2wfb6frcls677glq-2.smil",
                "content_type": None,
                "size": None,
                "sha256": None,
                "filename": "m-dr4mcch2wfb6frcls677glq-2.smil",
                "source_uri": None,
                "url": None,
                "status": "provider",
                "reason": None,
            },
        ],
        "provider_message_id": "m-dr4mcch2wfb6frcls677glq",
        "application_id": "a-rj7jf3fz7teaqupveqpug3i",
        "tag": None,
        "occurred_at": datetime(2015, 8, 4, 21, 50, 12, tzinfo=UTC),
        "received_at": RECEIVED_AT,
        "segment_count": 1,
        "error_code": None,
        "error_description": None,
        "attributes": {
            "state": "received",
            "messageUri": f"{CATAPULT}/messages/m-dr4mcch2wfb6frcls677glq",
        },
    }


OUR_NUMBER = "+19195551000"
CASES = [
    # (payload file, expected canonical fields)
    (
        "outbound_queued.json",
        {
            "event_type": "sending",
            "direction": "outbound",
            "owner": OUR_NUMBER,
            "from": OUR_NUMBER,
            "to": ["+19195554444"],
            "text": "Your order #4411 has shipped 📦",
            "tag": "order-4411",
            "error_code": None,
            "attributes": {
                "state": "queued",
                "messageUri": f"{CATAPULT}/messages/m-5tqkz3gs4ya2xtvbm7hsqpi",
            },
        },
    ),
    (
        "outbound_sent_waiting.json",
        {
            "event_type": "sent",
            "owner": OUR_NUMBER,
            "error_code": None,
            "error_description": None,
            "attributes": {
                "state": "sent",
                "deliveryState": "waiting",
                "messageUri": f"{CATAPULT}/messages/m-5tqkz3gs4ya2xtvbm7hsqpi",
            },
        },
    ),
    (
        "outbound_delivered.json",
        {
            "event_type": "delivered",
            "direction": "outbound",
            "owner": OUR_NUMBER,
            "error_code": None,
            "error_description": None,
            # Code 0 is no error: the delivery fields stay as sent.
            "attributes": {
                "state": "sent",
                "deliveryState": "delivered",
                "deliveryCode": "0",
                "deliveryDescription": "Message delivered to carrier",
                "messageUri": f"{CATAPULT}/messages/m-5tqkz3gs4ya2xtvbm7hsqpi",
            },
        },
    ),
    (
        "outbound_not_delivered.json",
        {
            "event_type": "failed",
            "owner": OUR_NUMBER,
            "to": ["+12345678902"],
            "text": None,
            "media": [],
            "error_code": "720",
            "error_description": "Invalid destination number",
            "attributes": {
                "state": "error",
                "deliveryState": "not-delivered",
                "messageUri": f"{CATAPULT}/messages/m-xk3d2n7qfm5oq6c4wlvyj2a",
            },
        },
    ),
    (
        "outbound_sent_unknown_outcome.json",
        {
            "event_type": "sent",
            "to": ["+447700900123"],
            "occurred_at": datetime(2024, 4, 9, 13, 7, 0, 500000, tzinfo=UTC),
            "application_id": None,
            # 999 (unknown) is non-zero, so it is surfaced though the message is not failed.
            "error_code": "999",
            "error_description": "Unknown",
            "attributes": {"state": "sent", "deliveryState": "waiting"},
        },
    ),
    (
        "inbound_ugly.json",
        {
            "event_type": "received",
            "direction": "inbound",
            "owner": "+19195550002",
            "from": "+17045551234",
            "to": ["+19195550002"],
            "text": "Ça va? 👋🏽 नमस्ते — e\u0301",
            "media": [],
            "occurred_at": datetime(2024, 1, 1, 5, 0, tzinfo=UTC),
            "segment_count": None,
            "application_id": None,
            "attributes": {
                "carrier.name": "Verizon Wireless",
                "carrier.mcc": "311",
                "carrier.mnc": "480",
                "keywords": '["ca","va"]',
                "segmentCount": "1",
                "raw.owner": "19195550002",
                "raw.from": "+1 (704) 555-1234",
                "raw.to": '["19195550002"]',
            },
        },
    ),
]


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_payload_files(name: str, expected: dict[str, object]) -> None:
    [event] = translate(payload("bandwidth_v1", name))
    assert fields(event, *expected) == expected


def test_media_filenames_ignore_the_query_and_decode_escapes() -> None:
    [queued] = translate(payload("bandwidth_v1", "outbound_queued.json"))
    [unknown] = translate(payload("bandwidth_v1", "outbound_sent_unknown_outcome.json"))
    assert [m.filename for m in queued.media + unknown.media] == ["label.png", "ticket QR.png"]


def test_event_id_is_stable_across_retries_and_distinct_per_state() -> None:
    # One message (same messageId and time) through queued, sent/waiting and delivered.
    names = ["outbound_queued.json", "outbound_sent_waiting.json", "outbound_delivered.json"]
    first = [translate(payload("bandwidth_v1", n))[0].event_id for n in names]
    again = [translate(payload("bandwidth_v1", n))[0].event_id for n in names]
    assert first == again
    assert len(set(first)) == 3


def test_default_country_makes_bare_national_numbers_e164() -> None:
    body = variant("inbound_mms.json", {"to": "2534483100", "from": "5035555555"})
    [event] = translate(body, TranslateContext(default_country="US"))
    assert (event.owner, event.from_, event.to) == (
        "+12534483100",
        "+15035555555",
        ["+12534483100"],
    )
    assert event.attributes["raw.owner"] == "2534483100"
    assert event.attributes["raw.from"] == "5035555555"
    assert event.attributes["raw.to"] == '["2534483100"]'


def test_twenty_media() -> None:
    urls = [f"{CATAPULT}/media/m-x-{i}.jpg" for i in range(20)]
    [event] = translate(variant("inbound_mms.json", {"media": urls}))
    assert event.media == [
        Media(u, filename=f"m-x-{i}.jpg", status="provider") for i, u in enumerate(urls)
    ]


UGLY = [
    pytest.param(
        "inbound_mms.json",
        {"state": DELETE},
        {
            "event_type": "received",
            "attributes": {"messageUri": f"{CATAPULT}/messages/m-dr4mcch2wfb6frcls677glq"},
        },
        id="inbound without state is still a received message",
    ),
    pytest.param(
        "inbound_mms.json",
        {"text": "", "media": [], "applicationId": DELETE, "segmentCount": DELETE},
        {"text": None, "media": [], "application_id": None, "segment_count": None},
        id="empty text, no media, optional fields missing",
    ),
    pytest.param(
        "inbound_mms.json",
        {"text": DELETE, "media": DELETE, "time": DELETE, "from": DELETE},
        {"text": None, "media": [], "occurred_at": None, "from": None},
        id="missing text, media, time and from",
    ),
    pytest.param(
        "inbound_mms.json",
        {"text": None, "media": None, "time": None},
        {"text": None, "media": [], "occurred_at": None},
        id="explicit nulls",
    ),
    pytest.param(
        "inbound_mms.json",
        {"text": "🎉" * 500 + "\u200d\u0000\ufeff"},
        {"text": "🎉" * 500 + "\u200d\u0000\ufeff"},
        id="long emoji text with zero-width, NUL and BOM characters kept as sent",
    ),
    pytest.param(
        "inbound_mms.json",
        {"to": ["+12534483100", "+13365550003"]},
        {"owner": "+12534483100", "to": ["+12534483100", "+13365550003"]},
        id="to as a list: the first recipient is ours",
    ),
    pytest.param(
        "inbound_mms.json",
        {"to": "28444", "from": "15035555555"},
        {"owner": "28444", "to": ["28444"], "from": "+15035555555"},
        id="short code stays, bare international digits get a plus",
    ),
    pytest.param(
        "inbound_mms.json",
        {"time": "2015-08-04T23:50:12.123456+02:00"},
        {"occurred_at": datetime(2015, 8, 4, 21, 50, 12, 123456, tzinfo=UTC)},
        id="offset and microseconds",
    ),
    pytest.param(
        "inbound_mms.json",
        {"time": "2015-08-04T21:50:12"},
        {"occurred_at": datetime(2015, 8, 4, 21, 50, 12, tzinfo=UTC)},
        id="time without offset is UTC",
    ),
    pytest.param(
        "inbound_mms.json",
        {"messageId": 123456789, "applicationId": 42},
        {"provider_message_id": "123456789", "application_id": "42"},
        id="numeric ids kept as text",
    ),
    pytest.param(
        "outbound_queued.json",
        {"state": "sending"},
        {"event_type": "sending", "attributes": {"state": "sending", "tag": DELETE}},
        id="sending",
    ),
    pytest.param(
        "outbound_queued.json",
        {"state": "error", "tag": DELETE},
        {"event_type": "failed", "error_code": None, "error_description": None, "tag": None},
        id="error without delivery details",
    ),
    pytest.param(
        "outbound_not_delivered.json",
        {"deliveryCode": 775, "deliveryState": DELETE},
        {"event_type": "failed", "error_code": "775"},
        id="numeric code, state error alone means failed",
    ),
    pytest.param(
        "outbound_delivered.json",
        {"deliveryCode": "000"},
        {"event_type": "delivered", "error_code": None},
        id="zero code as padded text",
    ),
    pytest.param(
        "outbound_delivered.json",
        {"state": "error"},
        {"event_type": "delivered"},
        id="final delivery state outranks state",
    ),
    pytest.param(
        "outbound_queued.json",
        {"segmentCount": 2**40},
        {"segment_count": None, "attributes": {"segmentCount": str(2**40)}},
        id="segmentCount too large for Avro int kept as attribute",
    ),
    pytest.param(
        "outbound_queued.json",
        {"segmentCount": True},
        {"segment_count": None, "attributes": {"segmentCount": "true"}},
        id="boolean segmentCount kept as attribute",
    ),
    pytest.param(
        "outbound_queued.json",
        {"to": DELETE, "from": "19195551000"},
        {"owner": "+19195551000", "to": [], "attributes": {"raw.owner": "19195551000"}},
        id="outbound without to, our number without plus",
    ),
]


@pytest.mark.parametrize(("name", "changes", "expected"), UGLY)
def test_ugly_payloads(name: str, changes: dict[str, Any], expected: dict[str, Any]) -> None:
    [event] = translate(variant(name, changes))
    record = event.to_avro()
    plain = {k: v for k, v in expected.items() if k != "attributes"}
    assert {k: record[k] for k in plain} == plain
    # Only the attributes named are checked; DELETE means "must not be there".
    for key, value in expected.get("attributes", {}).items():
        assert record["attributes"].get(key, DELETE) == value, key


REFUSED = [
    pytest.param(b"", "invalid_json", id="empty body"),
    pytest.param(b"eventType=mms&direction=in", "invalid_json", id="form encoded"),
    pytest.param(b'{"eventType":"mms",', "invalid_json", id="truncated"),
    pytest.param(b"\xef\xbb\xbf{}", "invalid_json", id="BOM"),
    pytest.param(b"[" * 40 + b"]" * 40, "json_too_deep", id="deep nesting"),
    pytest.param(
        "[" + variant("inbound_mms.json", {}) + "]", "invalid_event", id="array (that is v2)"
    ),
    pytest.param(b'"mms"', "invalid_event", id="not an object"),
    pytest.param(variant("inbound_mms.json", {"eventType": "sms"}), "unknown_event_type", id="sms"),
    pytest.param(
        variant("inbound_mms.json", {"eventType": "MMS"}), "unknown_event_type", id="MMS uppercase"
    ),
    pytest.param(
        variant("inbound_mms.json", {"eventType": DELETE}), "missing_field", id="no eventType"
    ),
    pytest.param(
        variant("inbound_mms.json", {"eventType": ["mms"]}), "invalid_field", id="eventType list"
    ),
    pytest.param(
        variant("inbound_mms.json", {"direction": DELETE}), "missing_field", id="no direction"
    ),
    pytest.param(
        variant("inbound_mms.json", {"direction": "inbound"}), "invalid_field", id="bad direction"
    ),
    pytest.param(
        variant("inbound_mms.json", {"state": "sent"}), "unknown_event_type", id="inbound sent"
    ),
    pytest.param(
        variant("outbound_queued.json", {"state": "received"}),
        "unknown_event_type",
        id="outbound received",
    ),
    pytest.param(
        variant("outbound_queued.json", {"state": DELETE}),
        "unknown_event_type",
        id="outbound without state",
    ),
    pytest.param(
        variant("outbound_queued.json", {"state": "accepted", "deliveryState": "waiting"}),
        "unknown_event_type",
        id="unknown state",
    ),
    pytest.param(
        variant("inbound_mms.json", {"messageId": DELETE}), "missing_field", id="no messageId"
    ),
    pytest.param(variant("inbound_mms.json", {"messageId": ""}), "missing_field", id="empty id"),
    pytest.param(variant("inbound_mms.json", {"to": DELETE}), "missing_field", id="inbound no to"),
    pytest.param(variant("inbound_mms.json", {"to": []}), "missing_field", id="inbound to empty"),
    pytest.param(
        variant("outbound_queued.json", {"from": DELETE}), "missing_field", id="outbound no from"
    ),
    pytest.param(
        variant("inbound_mms.json", {"to": {"number": "+1"}}), "invalid_field", id="to object"
    ),
    pytest.param(
        variant("inbound_mms.json", {"media": {"0": "x"}}), "invalid_field", id="media object"
    ),
    pytest.param(variant("inbound_mms.json", {"media": [None, 1.5]}), "invalid_field", id="float"),
    pytest.param(variant("inbound_mms.json", {"text": False}), "invalid_field", id="text bool"),
    pytest.param(
        variant("outbound_delivered.json", {"deliveryCode": 0.0}),
        "invalid_field",
        id="float deliveryCode",
    ),
    pytest.param(variant("inbound_mms.json", {"time": "yesterday"}), "invalid_time", id="bad time"),
    pytest.param(variant("inbound_mms.json", {"time": 1438725012}), "invalid_time", id="epoch"),
    pytest.param(
        variant("inbound_mms.json", {"time": "9999-12-31T23:59:59-01:00"}),
        "invalid_time",
        id="time past datetime's range",
    ),
]


@pytest.mark.parametrize(("body", "code"), REFUSED)
def test_refusals_name_the_problem(body: bytes | str, code: str) -> None:
    with pytest.raises(Refusal) as info:
        translate(body)
    assert info.value.code == code
    reply = PROVIDER.refused(info.value)
    assert reply.status == 400
    assert code.encode() in reply.body
