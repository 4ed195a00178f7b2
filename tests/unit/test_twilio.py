"""Twilio Programmable Messaging webhooks (form-encoded) to canonical records: the table
(tests/harness.py runs it), golden records beside the payloads in tests/payloads/twilio/, the
signature's known answers from twilio-python, and the TwiML replies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree

import pytest

from connector.providers.contract import Refusal
from connector.providers.signatures import Signed
from connector.providers.twilio import NAME, PROVIDER, SIGNATURE
from connector.record import Media, event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import payload

MODULE = harness.module_of(NAME)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
MMS = "southport_inbound_mms_1media.form"
MMS_3 = "written_inbound_mms_3media_service.form"
DELIVERED = "va_status_delivered.form"
MMS_3_MEDIA = (
    "https://api.twilio.com/2010-04-01/Accounts/AC3f9d1e7b52c04a86b1e0f2d93c7a6b58/Messages/"
    "MMb71c0e4f9a2d3865c1e7f0a4b9d2c613/Media/"
)


def form(file: str, **changes: Any) -> str:
    """A payload file with fields replaced, added at the end, or removed (ABSENT)."""
    fields = dict(parse_qsl(payload(MODULE, file).decode(), keep_blank_values=True))
    for name, value in changes.items():
        if value is ABSENT:
            fields.pop(name, None)
        else:
            fields[name] = value
    return urlencode(list(fields.items()))


def medium(sid: str, content_type: str) -> Media:
    """A medium of MMS_3 as the record has it: still at Twilio."""
    return Media(MMS_3_MEDIA + sid, content_type, filename=sid, status="provider")


def status(raw: str, event_type: str) -> Case:
    return Case(
        f"MessageStatus {raw} is {event_type}",
        body=form(DELIVERED, MessageStatus=raw),
        headers=FORM,
        fields={
            "event_type": event_type,
            "direction": "outbound",
            "owner": "+13364432222",
            "attributes": including({"MessageStatus": raw}),
        },
    )


def refused(
    label: str, body: str | bytes, code: str, status: int = 400, headers: dict[str, str] = FORM
) -> Case:
    # Dead-lettered, and answered with empty TwiML (200) so Twilio neither retries nor falls
    # back (test_accepted_and_dead_lettered_answers_are_empty_twiml).
    return Case(label, body=body, headers=headers, refused=(code, status))


# The spec of the status mapping (not read from the module, so a change to it shows here).
STATUSES = {
    "accepted": "sending",
    "scheduled": "sending",
    "queued": "sending",
    "sending": "sending",
    "sent": "sent",
    "partially_delivered": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
GOLDEN_FILES = {
    MMS: "an incoming MMS with one picture, as Twilio posts it",
    MMS_3: "a media-only MMS via a Messaging Service: three media, their content types in order",
    "courier_inbound_mms_2media.form": "relative media URLs are kept in attributes, not media",
    "courier_inbound_mms_2media_with_body.form": "the same with text",
    "courier_inbound_sms.form": "an SMS (NumMedia=0) is a record too: one webhook for both",
    "courier_inbound_sms_base64_body.form": "a base64-looking Body is kept as sent",
    "courier_inbound_sms_shortcode.form": "to our short code: owner as sent",
    "courier_status_sent_messaging_service.form": "sent via a Messaging Service: application_id",
    DELIVERED: "delivered, RawDlrDoneDate kept in attributes and the event's identity",
    "va_status_undelivered.form": "MessageStatus outranks a disagreeing SmsStatus",
    "va_status_failed_30008.form": "failed with ErrorCode 30008",
}

TABLE = [
    *(Case(label, file=file, headers=FORM, golden=True) for file, label in GOLDEN_FILES.items()),
    *(status(raw, event_type) for raw, event_type in STATUSES.items()),
    Case("no Content-Type: still a form", file=MMS, golden="southport_inbound_mms_1media"),
    Case(
        "a status callback from before MessageStatus: SmsStatus says it",
        body=form(DELIVERED, MessageStatus=ABSENT),
        headers=FORM,
        fields={"event_type": "delivered", "direction": "outbound"},
    ),
    Case(
        "an incoming message without the deprecated SmsStatus",
        body=form(MMS, SmsStatus=ABSENT),
        headers=FORM,
        fields={"event_type": "received", "owner": "+19362373705", "from": "+12032572584"},
    ),
    Case(
        "ErrorMessage, when sent, is the error's description",
        body=form("va_status_failed_30008.form", ErrorMessage="Unknown error"),
        headers=FORM,
        fields={"error_code": "30008", "error_description": "Unknown error"},
    ),
    Case(
        "an empty ErrorCode is no error code",
        body=form(DELIVERED, ErrorCode=""),
        headers=FORM,
        fields={"error_code": None, "attributes": including({"ErrorCode": ABSENT})},
    ),
    Case(
        "a media URL that is not http(s) keeps the others' content types in line",
        body=form(MMS_3, MediaUrl1="cat.jpg"),
        headers=FORM,
        fields={
            "media": [
                medium("ME1a9e4c7b2f0d3856a7c1e9b4f2d0a368", "image/jpeg"),
                medium("MEc40f7a2e9b1d6358e0a3c7f2b9d4e561", "text/vcard"),
            ],
            "attributes": including(
                {
                    "media.1.refused": '{"code":"unsupported_media_uri","uri":"cat.jpg"}',
                    "media.1.contentType": "video/3gpp",  # kept beside it, not lost
                }
            ),
        },
    ),
    Case(
        "an odd NumSegments is kept in attributes",
        body=form(MMS, NumSegments="two"),
        headers=FORM,
        fields={"segment_count": None, "attributes": including({"NumSegments": "two"})},
    ),
    Case(
        "default country makes bare national numbers E.164",
        body=form(MMS, To="9362373705", From="7045551234"),
        headers=FORM,
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19362373705", "from": "+17045551234", "to": ["+19362373705"]},
    ),
    Case(
        "Ünïcödé text and an emoji, percent-encoded UTF-8",
        body=form(MMS, Body="Ünïcödé ✓ 🎉"),
        headers=FORM,
        fields={"text": "Ünïcödé ✓ 🎉"},
    ),
    refused(
        "trimmed status callback without From (our number)",
        payload(MODULE, "courier_status_delivered.form"),
        "missing_field",
    ),
    refused(
        "a STOP failure naming only the recipient",
        payload(MODULE, "courier_status_failed_21610.form"),
        "missing_field",
    ),
    *(
        refused(
            f"WhatsApp is another channel: {file}", payload(MODULE, file), "unsupported_channel"
        )
        for file in (
            "botbuilder_whatsapp_inbound_image.form",
            "botbuilder_whatsapp_status_delivered.form",
            "botbuilder_whatsapp_status_sent.form",
        )
    ),
    refused(
        "a Messenger sender", form(MMS, From="messenger:1234567890123456"), "unsupported_channel"
    ),
    refused("no MessageSid", form(MMS, MessageSid=ABSENT), "missing_field"),
    refused("blank To on an incoming message", form(MMS, To=" "), "missing_field"),
    refused(
        "a status Twilio never posts",
        form(DELIVERED, MessageStatus="receiving"),
        "unknown_event_type",
    ),
    refused("an empty MessageStatus", form(DELIVERED, MessageStatus=""), "unknown_event_type"),
    refused("not UTF-8", b"MessageSid=SM1&Body=caf\xe9", "invalid_form"),
    refused("a field sent twice", form(MMS) + "&To=%2B15550001111", "duplicate_field"),
    refused("NumMedia not a count", form(MMS, NumMedia="one"), "invalid_field"),
    refused("NumMedia negative", form(MMS, NumMedia="-1"), "invalid_field"),
    refused("NumMedia 2, one MediaUrl", form(MMS, NumMedia="2"), "media_count_mismatch"),
    refused("NumMedia 0 with a MediaUrl0", form(MMS, NumMedia="0"), "media_count_mismatch"),
    refused(
        "MediaUrl01 is not MediaUrl1",
        form(MMS, NumMedia="2", MediaUrl01="https://api.twilio.com/x"),
        "media_count_mismatch",
    ),
    refused(
        "a gap in the MediaUrl<N> sent",
        form(MMS_3, MediaUrl1=ABSENT, MediaUrl3="https://api.twilio.com/x"),
        "media_count_mismatch",
    ),
    refused(
        "one medium past the default media budget",
        form(
            MMS,
            NumMedia="51",
            **{f"MediaUrl{i}": f"https://api.twilio.com/m/{i}" for i in range(51)},
        ),
        "too_many_media",
        413,
    ),
    refused(
        "a NumMedia past the budget, whatever is sent",
        form(MMS, NumMedia="999999999"),
        "too_many_media",
        413,
    ),
    refused(
        "MediaUrl<N> past the budget, whatever NumMedia says",
        form(MMS, **{f"MediaUrl{i}": "https://api.twilio.com/m" for i in range(1, 60)}),
        "too_many_media",
        413,
    ),
    refused(
        "10,001 fields, one past the default budget",
        "&".join(f"f{i}=" for i in range(10_001)),
        "too_many_elements",
        413,
    ),
    refused(
        "a unit separator in MessageSid could collide with another event's id",
        form(MMS, MessageSid="MM1\x1fx"),
        "invalid_id",
    ),
    refused(
        "a JSON body (Twilio documents none for messaging)",
        '{"MessageSid": "SM1", "To": "+15550001111"}',
        "unsupported_media_type",
        415,
        headers=JSON,
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_come_from_the_message_and_its_status() -> None:
    translate = harness.Translator(NAME)
    [inbound] = translate(payload(MODULE, MMS), FORM)
    assert inbound.event_id == event_id(
        NAME, "MM1c05a7205210e96eac11f4e1a484d3f2", "received", None
    )
    [delivered] = translate(payload(MODULE, DELIVERED), FORM)
    assert delivered.event_id == event_id(NAME, "SMyyy", "delivered", "2303072155")
    # The same message's other statuses are other events; a retry is the same one.
    [undelivered] = translate(payload(MODULE, "va_status_undelivered.form"), FORM)
    assert undelivered.event_id != delivered.event_id
    assert translate(payload(MODULE, DELIVERED), FORM)[0].event_id == delivered.event_id


# --- the signature: twilio-python's RequestValidator tests ------------------------------------

# tests/unit/test_request_validator.py of github.com/twilio/twilio-python at 306691e793f4
# (tests/payloads/twilio/sig_test_twilio_python.params.json): token 12345.
VECTORS = json.loads(payload(MODULE, "sig_test_twilio_python.params.json"))
TOKEN = VECTORS["token"].encode()
URI = VECTORS["uri"]
PARAMS = urlencode(VECTORS["params"]).encode()


def verify(url: str, signature: str, body: bytes, headers: dict[str, str] = FORM) -> object:
    lowered = {k.lower(): v for k, v in headers.items()} | {"x-twilio-signature": signature}
    try:
        SIGNATURE.verify(Signed(url, lowered, body, 0.0), [TOKEN], 300.0)
    except Refusal as refusal:
        return refusal.code, refusal.status
    return 200


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URI, VECTORS["expected"]),  # test_validation
        (URI, VECTORS["https_port_443_expected"]),  # adds_port_on_https
        (URI.replace("https", "http"), VECTORS["http_port_80_expected"]),  # adds_port_on_http
        (URI.replace(".com", ".com:1234"), VECTORS["expected"]),  # removes_port_on_https
        (  # removes_port_on_http: the port kept
            URI.replace(".com", ".com:1234").replace("https", "http"),
            VECTORS["http_port_1234_expected"],
        ),
    ],
    ids=["as is", "https :443 added", "http :80 added", "https :1234 removed", "http :1234"],
)
def test_twilio_python_known_answers(url: str, expected: str) -> None:
    assert verify(url, expected, PARAMS) == 200
    assert verify(url, expected, PARAMS + b"0") == ("signature_invalid", 403)


def test_repeated_parameters_are_signed_sorted_and_once() -> None:
    pairs = [tuple(pair) for pair in VECTORS["duplicate_params_multidict"]]
    assert verify(URI, VECTORS["duplicate_expected"], urlencode(pairs).encode()) == 200


def test_a_json_body_is_bound_by_its_sha256_in_the_url() -> None:
    body = payload(MODULE, "sig_test_json_body.json").removesuffix(b"\n")
    assert body == VECTORS["body"].encode()
    with_hash = VECTORS["uriWithBody"]
    assert verify(with_hash, VECTORS["body_signature"], body, JSON) == 200
    assert verify(with_hash, VECTORS["body_signature"], body + b" ", JSON) == (
        "signature_invalid",
        403,
    )
    # A JSON body posted to a URL without bodySHA256 is bound by nothing: refused.
    assert verify(URI, VECTORS["body_signature"], body, JSON) == ("signature_invalid", 403)


def test_a_body_that_is_no_form_fails_the_signature_not_the_app() -> None:
    assert verify(URI, VECTORS["expected"], b"Body=caf\xe9") == ("signature_invalid", 403)


# --- replies -------------------------------------------------------------------------------


def test_accepted_and_dead_lettered_answers_are_empty_twiml() -> None:
    # What courier answers (its WriteMsgSuccessResponse), byte for byte; the same document
    # as twilio-python's MessagingResponse() renders it.
    courier = payload(MODULE, "reply_empty_twiml_courier.xml")
    rendered = ElementTree.fromstring(payload(MODULE, "reply_empty_twiml_twilio_python.xml"))
    for reply in (PROVIDER.accepted([]), PROVIDER.dead_lettered(Refusal("x", "y"))):
        assert (reply.status, reply.media_type, reply.body) == (200, "text/xml", courier)
        root = ElementTree.fromstring(reply.body)
        assert (root.tag, list(root), root.text) == (rendered.tag, [], rendered.text)


def test_a_refusal_names_its_code_with_its_status() -> None:
    reply = PROVIDER.refused(Refusal("media_count_mismatch", "NumMedia is 2", 400))
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "media_count_mismatch"
