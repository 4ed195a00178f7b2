"""Every provider over HTTP into the real Kafka: the record consumers read is the one the
`translate` path computes, keyed by our number, and the provider gets the reply it requires."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector import pipeline
from connector.config import Config
from tests.helpers import callback, payload
from tests.live import running

pytestmark = pytest.mark.integration

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OPENMARKET_CT = 'multipart/mixed; boundary="----=_Part_4421_1871.1718031234"'

CASES = [
    # provider, payload dir, file, headers, expected (key, event_type, media count), reply body
    ("bandwidth-v1", "bandwidth_v1", "inbound_mms.json", {}, ("+12534483100", "received", 2)),
    ("bandwidth-v1", "bandwidth_v1", "outbound_not_delivered.json", {}, (None, "failed", None)),
    (
        "openmarket",
        "openmarket",
        "mo_crlf_preamble.eml",
        {"Content-Type": OPENMARKET_CT, "X-Request-Id": "015-3DD6C366"},
        ("+14155550100", "received", 1),
    ),
    (
        "openmarket",
        "openmarket",
        "report_rejected.json",
        {"Content-Type": "application/json", "X-Request-Id": "015-R1"},
        (None, "failed", 0),
    ),
    ("sinch", "sinch", "mms_mo.xml", {"Content-Type": "application/xml"}, ("28444", "received", 3)),
    (
        "sinch",
        "sinch",
        "mms_mo.json",
        {"Content-Type": "application/json"},
        ("28444", "received", 2),
    ),
    # The documented MO in Skycore's dialect, raw and as the form field xml: the MO's record.
    (
        "sinch",
        "sinch",
        "skycore_mms_mo.written.xml",
        {"Content-Type": "application/xml"},
        ("28444", "received", 3),
    ),
    ("sinch", "sinch", "skycore_mms_mo.written.form", FORM, ("28444", "received", 3)),
    # Reports: from our short code; without FROM, keyed by the tracking id.
    (
        "sinch",
        "sinch",
        "skycore_v13_mms_mt_N102_binary.xml",
        {"Content-Type": "application/xml"},
        ("60856", "delivered", 0),
    ),
    (
        "sinch",
        "sinch",
        "skycore_2014mar_mms_mt_N102_binary_no_from.xml",
        {"Content-Type": "application/xml"},
        ("TU1TXzU5Nzg3OQ==", "delivered", 0),
    ),
    (
        "sinch",
        "sinch",
        "sinch_xml_mms_mt_E102.xml",
        {"Content-Type": "application/xml"},
        ("28444", "failed", 0),
    ),
    (
        "infobip",
        "infobip",
        "openapi_inbound_mms_group.json",
        {"Content-Type": "application/json"},
        ("25256", "received", 1),
    ),
    (
        "infobip",
        "infobip",
        "openapi_v2_delivery_report.json",
        {"Content-Type": "application/json"},
        ("+441134960000", "delivered", 0),
    ),
    (
        "infobip",
        "infobip",
        "openapi_v1_delivery_report_deprecated.json",
        {"Content-Type": "application/json"},
        (None, "delivered", 0),  # two reports, each keyed by its messageId
    ),
    (
        "plivo",
        "plivo",
        "inbound_mms.written.form",
        FORM,
        ("+14155550100", "received", 2),
    ),
    (
        "plivo",
        "plivo",
        "status_undelivered_mms.written.form",
        FORM,
        ("+14155550100", "failed", 0),
    ),
    (
        "plivo",
        "plivo",
        "status_delivered.courier_comment.form",
        FORM,
        ("+13342031111", "delivered", 0),
    ),
    (
        "telnyx",
        "telnyx",
        "inbound_mms.telnyx-dotnet.json",
        {"Content-Type": "application/json"},
        ("+19842550905", "received", 1),
    ),
    (
        "telnyx",
        "telnyx",
        "inbound_group_mms.ours.json",
        {"Content-Type": "application/json"},
        ("+17735550002", "received", 2),
    ),
    (
        "telnyx",
        "telnyx",
        "message_sent_mms.openapi-example.json",
        {"Content-Type": "application/json"},
        ("+18445550001", "sending", 1),
    ),
    (
        "twilio",
        "twilio",
        "southport_inbound_mms_1media.form",
        FORM,
        ("+19362373705", "received", 1),
    ),
    (
        "twilio",
        "twilio",
        "written_inbound_mms_3media_service.form",
        FORM,
        ("+12125550147", "received", 3),
    ),
    ("twilio", "twilio", "va_status_failed_30008.form", FORM, ("+12222222222", "failed", 0)),
    (
        "twilio",
        "twilio",
        "courier_status_sent_messaging_service.form",
        FORM,
        ("+14133881111", "sent", 0),
    ),
    (
        "vonage",
        "vonage",
        "written_inbound_mms_image_and_video.json",
        {"Content-Type": "application/json"},
        ("+12015550123", "received", 2),
    ),
    (
        "vonage",
        "vonage",
        "written_status_rejected.json",
        {"Content-Type": "application/json"},
        ("+12015550123", "failed", 0),
    ),
]


@pytest.mark.parametrize(
    ("provider", "folder", "name", "headers", "expected"),
    CASES,
    ids=[f"{c[0]}:{c[2]}" for c in CASES],
)
def test_provider_callback_lands_in_kafka(
    make_config,
    records,
    topic: str,
    tmp_path: Path,
    provider: str,
    folder: str,
    name: str,
    headers: dict[str, str],
    expected: tuple[Any, ...],
) -> None:
    config: Config = make_config({provider: {"enabled": True, "topic": topic}})
    body = payload(folder, name)
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/{provider}", content=body, headers=headers, timeout=30
        )
    assert reply.status_code == 200, reply.text
    if provider in ("openmarket", "plivo"):
        # OpenMarket requires an empty 200; Plivo would read a body as a reply to send.
        assert reply.content == b""
    if provider == "twilio":
        # Twilio requires TwiML; an empty <Response/> sends no reply message.
        assert reply.headers["content-type"] == "text/xml"
        assert reply.content == b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

    [route] = pipeline.routes(config)
    computed = pipeline.translate(route, callback(body, headers))
    consumed = records(topic)
    assert len(consumed) == len(computed)
    key, event_type, media_count = expected
    for record, want in zip(consumed, computed, strict=True):
        value = dict(record.value)
        value.pop("received_at")
        wanted = want.value()
        wanted.pop("received_at")
        assert value == wanted
        assert record.key == want.key
        assert record.headers == want.headers
        assert value["event_type"] == event_type
        if key is not None:
            assert record.key == key
        if media_count is not None:
            assert len(value["media"]) == media_count
        for media in value["media"]:
            if media["uri"].startswith("file://"):
                # Inline parts are in the media store, content-addressed.
                stored = Path(media["uri"].removeprefix("file://")).read_bytes()
                assert hashlib.sha256(stored).hexdigest() == media["sha256"]
                assert len(stored) == media["size"]


def test_an_mo_whose_parts_cannot_be_stored_is_503_and_publishes_nothing(
    make_config, records, topic: str, tmp_path: Path
) -> None:
    # The parts are named on the event loop and written on a worker thread after translation:
    # a failed write is still a 503 media_store_failed (never a 500, never a record without
    # its parts), and the provider's retry goes through once the store is back.
    (tmp_path / "media").write_bytes(b"not a directory")  # the store's root
    config: Config = make_config({"openmarket": {"enabled": True, "topic": topic}})
    body = payload("openmarket", "mo_crlf_preamble.eml")
    headers = {"Content-Type": OPENMARKET_CT, "X-Request-Id": "015-3DD6C366"}
    with running(config) as base:
        down = httpx.post(f"{base}/callbacks/openmarket", content=body, headers=headers)
        (tmp_path / "media").unlink()
        back = httpx.post(f"{base}/callbacks/openmarket", content=body, headers=headers)
    assert (down.status_code, down.json()["error"], down.headers["retry-after"]) == (
        503,
        "media_store_failed",
        "5",
    )
    assert back.status_code == 200
    (record,) = records(topic)
    for media in record.value["media"]:
        assert Path(media["uri"].removeprefix("file://")).is_file()


def test_a_vonage_webhook_on_another_channel_is_dead_lettered_and_answered_200(
    make_config, records, topic: str, dlq_topic: str
) -> None:
    config: Config = make_config({"vonage": {"enabled": True, "topic": topic}})
    body = payload("vonage", "inbound_allfields_dotnet_sdk_fixture.json")  # channel whatsapp
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/vonage",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "status": "dead_lettered",
        "error": "unsupported_channel",
        "detail": "channel 'whatsapp': this connector takes mms only",
    }
    assert records(topic) == []
    assert len(records(dlq_topic)) == 1


def test_a_twilio_whatsapp_message_is_dead_lettered_and_answered_empty_twiml(
    make_config, records, topic: str, dlq_topic: str
) -> None:
    config: Config = make_config({"twilio": {"enabled": True, "topic": topic}})
    body = payload("twilio", "botbuilder_whatsapp_inbound_image.form")
    with running(config) as base:
        reply = httpx.post(f"{base}/callbacks/twilio", content=body, headers=FORM, timeout=30)
    assert (reply.status_code, reply.headers["content-type"]) == (200, "text/xml"), reply.text
    assert reply.content == b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert records(topic) == []
    [letter] = records(dlq_topic)
    assert letter.headers["error_code"] == "unsupported_channel"
