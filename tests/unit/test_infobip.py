"""Infobip MMS webhooks to canonical records: the table (tests/harness.py runs it), golden
records beside the payloads in tests/payloads/infobip/ (sources in its README.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from connector.providers import PROVIDERS
from connector.providers.contract import Refusal
from connector.providers.infobip import NAME
from connector.record import event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import payload

MODULE = harness.module_of(NAME)
JSON = {"Content-Type": "application/json"}
XML = {"Content-Type": "application/xml"}
INBOUND = "openapi_inbound_mms_single.json"
V1 = "openapi_v1_delivery_report_deprecated.json"
V2 = "openapi_v2_delivery_report.json"
RESULT = orjson.loads(payload(MODULE, INBOUND))["results"][0]
REPORT = orjson.loads(payload(MODULE, V2))["results"][0]


def inbound(**changes: object) -> bytes:
    """Infobip's documented received MMS with fields of its result replaced."""
    return harness.variant(MODULE, INBOUND, {f"results.0.{k}": v for k, v in changes.items()})


def v1(**changes: object) -> bytes:
    """Infobip's documented (deprecated) v1 report batch with fields of its first replaced."""
    return harness.variant(MODULE, V1, {f"results.0.{k}": v for k, v in changes.items()})


def v2(**changes: object) -> bytes:
    """Infobip's documented v2 report with fields replaced."""
    return harness.variant(MODULE, V2, {f"results.0.{k}": v for k, v in changes.items()})


TABLE = [
    # Received MMS: Infobip's spec, its Java SDK's fixture (5.x and 6.x), courier's fixture.
    Case("received MMS from the spec", file=INBOUND, headers=JSON, golden=True),
    Case("received group MMS from the spec", file="openapi_inbound_mms_group.json", golden=True),
    Case("received MMS, Java SDK fixture", file="java_sdk_test_inbound_mms.json", golden=True),
    Case("received MMS, courier fixture", file="courier_test_inbound_mms.json", golden=True),
    Case(
        "group MMS: SMIL kept whole, text/plain with parameters is text, two texts joined",
        file="written_inbound_group_text_parts_and_smil.json",
        golden=True,
    ),
    # Delivery reports: v2 (sender is ours), v1 (no sender: keyed by the message id).
    Case("v2 delivery report from the spec", file=V2, headers=JSON, golden=True),
    Case(
        "v1 delivery reports from the spec (deprecated)",
        file=V1,
        golden=True,
    ),
    Case(
        "v1 reports, Java SDK 5.x fixture (smsCount, mccMnc a number, error group Ok)",
        file="java_5x_sdk_test_delivery_report.json",
        golden=True,
    ),
    Case(
        "reports, Java SDK 6.x fixture (v1 values with messageCount and platform)",
        file="java_6x_sdk_test_delivery_report.json",
        golden=True,
    ),
    Case(
        "courier's minimal report: a message id and a status group",
        file="courier_test_status_delivered.json",
        golden=True,
    ),
    Case(
        "v2 reports: pending, undeliverable, expired, rejected with NO_ERROR",
        file="written_v2_reports_every_outcome.json",
        golden=True,
    ),
    # Variations.
    Case(
        "default country makes bare national numbers E.164",
        body=inbound(**{"from": "7045551234", "to": "9195550002"}),
        headers=JSON,
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19195550002", "from": "+17045551234", "to": ["+19195550002"]},
    ),
    Case(
        "ACCEPTED is sending; the group name in any case",
        body=v2(status={"groupId": 0, "groupName": "accepted", "id": 26}),
        fields={"event_type": "sending", "attributes": including({"status.groupName": "accepted"})},
    ),
    Case(
        "an all-digit message id keys a v1 report as sent, not as a phone number",
        body=v1(messageId="14155550100"),
        fields=[
            {"owner": "14155550100", "attributes": including({"raw.owner": ABSENT})},
            {"owner": "12db39c3-7822-4e72-a3ec-c87442c0ffc5"},
        ],
    ),
    Case(
        "a refused media URL keeps its content type beside the refusal",
        body=inbound(
            message=[
                {"contentType": "image/png", "url": "file:///x"},
                RESULT["message"][1],
            ]
        ),
        fields={
            "media": [],
            "text": "This is message text",
            "attributes": including(
                {
                    "media.0.refused": '{"code":"unsupported_media_uri","uri":"file:///x"}',
                    "media.0.contentType": "image/png",
                }
            ),
        },
    ),
    Case(
        "a part with neither url nor value is kept whole; no text, no media",
        body=inbound(message=[{"contentType": "application/octet-stream", "size": 3}]),
        fields={
            "text": None,
            "media": [],
            "attributes": including(
                {"message.0.contentType": "application/octet-stream", "message.0.size": "3"}
            ),
        },
    ),
    Case(
        "a failure without an error object has no error code; its status stays",
        body=v2(status={"groupName": "REJECTED", "id": 12, "name": "REJECTED_NOT_ENOUGH_CREDITS"}),
        fields={
            "event_type": "failed",
            "error_code": None,
            "error_description": None,
            "attributes": including({"status.name": "REJECTED_NOT_ENOUGH_CREDITS"}),
        },
    ),
    Case(
        "v2's nested applicationId wins; a v1 one beside it is kept",
        body=v2(platform={"applicationId": "app-2"}, applicationId="app-1", smsCount=5),
        fields={
            "application_id": "app-2",
            "segment_count": 3,
            "attributes": including({"applicationId": "app-1", "smsCount": "5"}),
        },
    ),
    Case(
        "no times, no from",
        body=inbound(receivedAt=ABSENT, **{"from": ABSENT}),
        fields={"occurred_at": None, "from": None},
    ),
    Case(
        "offset times are UTC",
        body=v2(doneAt="2024-05-17T18:44:02.512-0700"),
        fields={"occurred_at": datetime(2024, 5, 18, 1, 44, 2, 512000, tzinfo=UTC)},
    ),
    # Refused.
    Case("not json", body=b"not json", refused=("invalid_json", 400)),
    Case("a list, not an object", body=b"[{}]", refused=("invalid_event", 400)),
    Case("no results", body=b'{"messageCount": 0}', refused=("missing_field", 400)),
    Case("results not a list", body=b'{"results": {}}', refused=("invalid_field", 400)),
    Case("empty results", body=b'{"results": []}', refused=("no_events", 400)),
    Case("a result not an object", body=b'{"results": [1]}', refused=("invalid_event", 400)),
    Case(
        "a click tracking notification is no message event",
        file="openapi_mms_click_tracking.json",
        refused=("unknown_event_type", 400),
    ),
    Case(
        "an SMS to the same URL is no MMS",
        body=b'{"results": [{"messageId": "1", "from": "41793026727", "to": "25256",'
        b' "text": "hi", "cleanText": "hi", "keyword": "HI", "smsCount": 1}]}',
        refused=("unknown_event_type", 400),
    ),
    Case(
        "the pull API's string-encoded message reaches no webhook",
        file="openapi_pull_inbox_reports_single.json",
        refused=("unsupported_message_format", 400),
    ),
    Case(
        "XML v2 reports",
        file="openapi_v2_delivery_report.xml",
        headers=XML,
        refused=("xml_not_supported", 415),
    ),
    Case(
        "XML v1 reports, told by the body without a Content-Type",
        file="openapi_v1_delivery_report_deprecated.xml",
        refused=("xml_not_supported", 415),
    ),
    Case("no message parts", body=inbound(message=ABSENT), refused=("missing_field", 400)),
    Case("message not a list", body=inbound(message=7), refused=("invalid_field", 400)),
    Case("a part not an object", body=inbound(message=["x"]), refused=("invalid_field", 400)),
    Case("group not a list", body=inbound(group={"to": "1"}), refused=("invalid_field", 400)),
    Case("a group item not an object", body=inbound(group=["1"]), refused=("invalid_field", 400)),
    Case("no message id", body=inbound(messageId=ABSENT), refused=("missing_field", 400)),
    Case("no number of ours", body=inbound(to=ABSENT), refused=("missing_field", 400)),
    Case("blank number of ours", body=inbound(to=" "), refused=("missing_field", 400)),
    Case("bad receivedAt", body=inbound(receivedAt="yesterday"), refused=("invalid_time", 400)),
    Case("status not an object", body=v2(status="DELIVERED"), refused=("invalid_field", 400)),
    Case("no status group", body=v2(status={"id": 5}), refused=("missing_field", 400)),
    Case(
        "an unknown status group",
        body=v2(status={"groupName": "OK"}),
        refused=("unknown_status", 400),
    ),
    Case("report without messageId", body=v2(messageId=ABSENT), refused=("missing_field", 400)),
    Case(
        "blank message id on a report without sender",
        body=v1(messageId=" "),
        refused=("missing_field", 400),
    ),
    Case("bad doneAt", body=v2(doneAt="2019-11-09 4pm"), refused=("invalid_time", 400)),
    Case("deep nesting", body=b"[" * 100 + b"]" * 100, refused=("json_too_deep", 400)),
    Case(
        "10 MB of [{},{},...] refused before parsing",
        body=b'{"results": [' + b"{}," * 3_000_000 + b"{}]}",
        headers=JSON,
        refused=("too_many_elements", 413),
    ),
    Case(
        "one report past the default events budget (a profile's bucket holds up to 2000)",
        body=orjson.dumps({"results": [REPORT] * 101}),
        headers=JSON,
        refused=("too_many_events", 413),
    ),
    Case(
        "one medium past the default media budget",
        body=inbound(message=[{"contentType": "image/jpeg", "url": "https://m.example/a"}] * 51),
        headers=JSON,
        refused=("too_many_media", 413),
    ),
    Case(
        "one recipient past the default budget: our number and 100 cc",
        body=inbound(group=[{"cc": f"1415555{i:04d}"} for i in range(100)]),
        headers=JSON,
        refused=("too_many_recipients", 413),
    ),
    Case(
        "a unit separator in an id could collide with another event's id",
        body=v2(messageId="m-1\x1fx"),
        headers=JSON,
        refused=("invalid_id", 400),
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_come_from_infobips_ids_and_are_stable_across_retries() -> None:
    translate = harness.Translator(NAME)
    [received] = translate(payload(MODULE, INBOUND))
    assert received.event_id == event_id(NAME, "MO", "817790313235066447")
    [report] = translate(payload(MODULE, V2))
    assert report.event_id == event_id(
        NAME, "DLR", "43u2ih-6453jbh-897kfs90u2nj", "DELIVERED", "5", "2026-07-07T06:32:15.101+0000"
    )
    body = payload(MODULE, "written_v2_reports_every_outcome.json")
    first = [e.event_id for e in translate(body)]
    assert first == [e.event_id for e in translate(body)]
    assert len(set(first)) == 4
    # An intermediate report and the final one on the same message are different events.
    pending = translate(v2(status={"groupName": "PENDING", "id": 7}))
    assert pending[0].event_id != report.event_id


def test_a_dead_lettered_callback_is_answered_200_so_infobip_stops_retrying() -> None:
    refusal = Refusal("unknown_status", "results[0].status.groupName 'X' is no status group")
    reply = PROVIDERS[NAME].dead_lettered(refusal)
    assert reply.status == 200
    assert orjson.loads(reply.body) == {
        "status": "dead_lettered",
        "error": "unknown_status",
        "detail": refusal.detail,
    }


def test_accepted_callbacks_are_answered_200() -> None:
    events = harness.Translator(NAME)(payload(MODULE, V1))
    assert PROVIDERS[NAME].accepted(events).status == 200


def test_infobip_declares_no_signature() -> None:
    # Its HMAC option is undocumented (what it signs, which header): auth.basic or auth.token.
    assert PROVIDERS[NAME].signature is None
