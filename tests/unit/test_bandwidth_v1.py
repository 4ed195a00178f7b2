"""Bandwidth v1 (Catapult) callbacks to canonical records: the table (tests/harness.py runs it),
golden records beside the payloads in tests/payloads/bandwidth_v1/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connector.providers.bandwidth_v1 import NAME
from connector.record import Media, event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import payload

MODULE = harness.module_of(NAME)
CATAPULT = "https://api.catapult.inetwork.com/v1/users/u-2oulzbvr6uwoy3hp4gfyz3a"
JSON = {"Content-Type": "application/json"}


def variant(name: str, changes: dict[str, Any]) -> bytes:
    """A payload file with some fields replaced (ABSENT removes one)."""
    return harness.variant(MODULE, name, changes)


def ok(label: str, name: str, changes: dict[str, Any], fields: dict[str, Any]) -> Case:
    return Case(label, body=variant(name, changes), headers=JSON, fields=fields)


def refused(label: str, body: bytes, code: str) -> Case:
    return Case(label, body=body, headers=JSON, refused=(code, 400))


def inbound(changes: dict[str, Any]) -> bytes:
    return variant("inbound_mms.json", changes)


TWENTY = [f"{CATAPULT}/media/m-x-{i}.jpg" for i in range(20)]

TABLE = [
    # The documented inbound example, made valid JSON.
    Case("inbound MMS", file="inbound_mms.json", headers=JSON, golden=True),
    Case("outbound queued", file="outbound_queued.json", headers=JSON, golden=True),
    Case("outbound sent, waiting", file="outbound_sent_waiting.json", headers=JSON, golden=True),
    # Code 0 is no error: the delivery fields stay as sent.
    Case("outbound delivered", file="outbound_delivered.json", headers=JSON, golden=True),
    Case("outbound not delivered", file="outbound_not_delivered.json", headers=JSON, golden=True),
    # 999 (unknown) is non-zero, so it is surfaced though the message is not failed; the media
    # file names ignore the query and decode escapes.
    Case(
        "outbound sent, unknown outcome",
        file="outbound_sent_unknown_outcome.json",
        headers=JSON,
        golden=True,
    ),
    Case("inbound, ugly but valid", file="inbound_ugly.json", headers=JSON, golden=True),
    Case(
        "default country makes bare national numbers E.164",
        body=inbound({"to": "2534483100", "from": "5035555555"}),
        headers=JSON,
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+12534483100", "from": "+15035555555", "to": ["+12534483100"]},
    ),
    ok(
        "twenty media",
        "inbound_mms.json",
        {"media": TWENTY},
        {
            "media": [
                Media(u, filename=f"m-x-{i}.jpg", status="provider") for i, u in enumerate(TWENTY)
            ]
        },
    ),
    ok(
        "inbound without state is still a received message",
        "inbound_mms.json",
        {"state": ABSENT},
        {
            "event_type": "received",
            "attributes": including(
                {"messageUri": f"{CATAPULT}/messages/m-dr4mcch2wfb6frcls677glq"}
            ),
        },
    ),
    ok(
        "empty text, no media, optional fields missing",
        "inbound_mms.json",
        {"text": "", "media": [], "applicationId": ABSENT, "segmentCount": ABSENT},
        {"text": None, "media": [], "application_id": None, "segment_count": None},
    ),
    ok(
        "missing text, media, time and from",
        "inbound_mms.json",
        {"text": ABSENT, "media": ABSENT, "time": ABSENT, "from": ABSENT},
        {"text": None, "media": [], "occurred_at": None, "from": None},
    ),
    ok(
        "explicit nulls",
        "inbound_mms.json",
        {"text": None, "media": None, "time": None},
        {"text": None, "media": [], "occurred_at": None},
    ),
    ok(
        "long emoji text with zero-width, NUL and BOM characters kept as sent",
        "inbound_mms.json",
        {"text": "🎉" * 500 + "\u200d\u0000\ufeff"},
        {"text": "🎉" * 500 + "\u200d\u0000\ufeff"},
    ),
    ok(
        "to as a list: the first recipient is ours",
        "inbound_mms.json",
        {"to": ["+12534483100", "+13365550003"]},
        {"owner": "+12534483100", "to": ["+12534483100", "+13365550003"]},
    ),
    ok(
        "short code stays, bare international digits get a plus",
        "inbound_mms.json",
        {"to": "28444", "from": "15035555555"},
        {"owner": "28444", "to": ["28444"], "from": "+15035555555"},
    ),
    ok(
        "offset and microseconds",
        "inbound_mms.json",
        {"time": "2015-08-04T23:50:12.123456+02:00"},
        {"occurred_at": datetime(2015, 8, 4, 21, 50, 12, 123456, tzinfo=UTC)},
    ),
    ok(
        "time without offset is UTC",
        "inbound_mms.json",
        {"time": "2015-08-04T21:50:12"},
        {"occurred_at": datetime(2015, 8, 4, 21, 50, 12, tzinfo=UTC)},
    ),
    ok(
        "numeric ids kept as text",
        "inbound_mms.json",
        {"messageId": 123456789, "applicationId": 42},
        {"provider_message_id": "123456789", "application_id": "42"},
    ),
    ok(
        "sending",
        "outbound_queued.json",
        {"state": "sending"},
        {"event_type": "sending", "attributes": including({"state": "sending", "tag": ABSENT})},
    ),
    ok(
        "error without delivery details",
        "outbound_queued.json",
        {"state": "error", "tag": ABSENT},
        {"event_type": "failed", "error_code": None, "error_description": None, "tag": None},
    ),
    ok(
        "numeric code, state error alone means failed",
        "outbound_not_delivered.json",
        {"deliveryCode": 775, "deliveryState": ABSENT},
        {"event_type": "failed", "error_code": "775"},
    ),
    ok(
        "zero code as padded text",
        "outbound_delivered.json",
        {"deliveryCode": "000"},
        {"event_type": "delivered", "error_code": None},
    ),
    ok(
        "final delivery state outranks state",
        "outbound_delivered.json",
        {"state": "error"},
        {"event_type": "delivered"},
    ),
    ok(
        "segmentCount too large for Avro int kept as attribute",
        "outbound_queued.json",
        {"segmentCount": 2**40},
        {"segment_count": None, "attributes": including({"segmentCount": str(2**40)})},
    ),
    ok(
        "boolean segmentCount kept as attribute",
        "outbound_queued.json",
        {"segmentCount": True},
        {"segment_count": None, "attributes": including({"segmentCount": "true"})},
    ),
    ok(
        "outbound without to, our number without plus",
        "outbound_queued.json",
        {"to": ABSENT, "from": "19195551000"},
        {
            "owner": "+19195551000",
            "to": [],
            "attributes": including({"raw.owner": "19195551000"}),
        },
    ),
    refused("empty body", b"", "invalid_json"),
    refused("form encoded", b"eventType=mms&direction=in", "invalid_json"),
    refused("truncated", b'{"eventType":"mms",', "invalid_json"),
    refused("BOM", b"\xef\xbb\xbf{}", "invalid_json"),
    refused("deep nesting", b"[" * 40 + b"]" * 40, "json_too_deep"),
    refused("array (that is v2)", b"[" + inbound({}) + b"]", "invalid_event"),
    refused("not an object", b'"mms"', "invalid_event"),
    refused("sms", inbound({"eventType": "sms"}), "unknown_event_type"),
    refused("MMS uppercase", inbound({"eventType": "MMS"}), "unknown_event_type"),
    refused("no eventType", inbound({"eventType": ABSENT}), "missing_field"),
    refused("eventType list", inbound({"eventType": ["mms"]}), "invalid_field"),
    refused("no direction", inbound({"direction": ABSENT}), "missing_field"),
    refused("bad direction", inbound({"direction": "inbound"}), "invalid_field"),
    refused("inbound sent", inbound({"state": "sent"}), "unknown_event_type"),
    refused(
        "outbound received",
        variant("outbound_queued.json", {"state": "received"}),
        "unknown_event_type",
    ),
    refused(
        "outbound without state",
        variant("outbound_queued.json", {"state": ABSENT}),
        "unknown_event_type",
    ),
    refused(
        "unknown state",
        variant("outbound_queued.json", {"state": "accepted", "deliveryState": "waiting"}),
        "unknown_event_type",
    ),
    refused("no messageId", inbound({"messageId": ABSENT}), "missing_field"),
    refused("empty id", inbound({"messageId": ""}), "missing_field"),
    refused("inbound no to", inbound({"to": ABSENT}), "missing_field"),
    refused("inbound to empty", inbound({"to": []}), "missing_field"),
    refused("outbound no from", variant("outbound_queued.json", {"from": ABSENT}), "missing_field"),
    refused("to object", inbound({"to": {"number": "+1"}}), "invalid_field"),
    refused("media object", inbound({"media": {"0": "x"}}), "invalid_field"),
    refused("float", inbound({"media": [None, 1.5]}), "invalid_field"),
    refused("text bool", inbound({"text": False}), "invalid_field"),
    refused(
        "float deliveryCode",
        variant("outbound_delivered.json", {"deliveryCode": 0.0}),
        "invalid_field",
    ),
    refused("bad time", inbound({"time": "yesterday"}), "invalid_time"),
    refused("epoch", inbound({"time": 1438725012}), "invalid_time"),
    refused(
        "time past datetime's range", inbound({"time": "9999-12-31T23:59:59-01:00"}), "invalid_time"
    ),
    # Hostile input (issue 9): each failed on the code before commit b25f525.
    refused("blank owner", inbound({"to": " ", "direction": "in"}), "missing_field"),
    refused("NUL in id", inbound({"messageId": "m\x00"}), "invalid_id"),
    Case(
        "many values in one array",
        body=b'{"a":[' + b'"x",' * 20_000 + b'"x"]}',
        headers=JSON,
        refused=("too_many_elements", 413),
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_are_stable_across_retries_and_distinct_per_state() -> None:
    translate = harness.Translator(NAME)
    [event] = translate(payload(MODULE, "inbound_mms.json"), JSON)
    assert event.event_id == event_id(
        NAME, "m-dr4mcch2wfb6frcls677glq", "received", None, "2015-08-04T21:50:12Z"
    )
    # One message (same messageId and time) through queued, sent/waiting and delivered.
    names = ["outbound_queued.json", "outbound_sent_waiting.json", "outbound_delivered.json"]
    first = [translate(payload(MODULE, n), JSON)[0].event_id for n in names]
    again = [translate(payload(MODULE, n), JSON)[0].event_id for n in names]
    assert first == again
    assert len(set(first)) == 3
