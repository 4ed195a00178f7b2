"""Plivo callbacks to canonical records: the table (tests/harness.py runs it), golden records
beside the payloads in tests/payloads/plivo/, and Plivo's V3 signature against its SDKs'
test vectors."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest

from connector.providers.contract import Refusal
from connector.providers.plivo import (
    NAME,
    NONCE_HEADER,
    PROVIDER,
    SIGNATURE,
    SIGNATURE_HEADER,
)
from connector.providers.signatures import Signed
from connector.record import Media, event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import payload

MODULE = harness.module_of(NAME)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INBOUND = "inbound_mms.written.form"
DELIVERED = "status_delivered_mms.written.form"
MEDIA = "https://media.plivo.com/Account/MAODZKMDFJMJU3MTEYNG/Media/"
INBOUND_MEDIA = ("91f8f9ce-e236-474f-a2b8-f75d9c35988a", "455a2f85-acd5-4bb7-9a6a-a7b7341cd592")


def form(file: str, **changes: Any) -> bytes:
    """A payload file with fields replaced or added (ABSENT removes one)."""
    fields = dict(parse_qsl(payload(MODULE, file).decode(), keep_blank_values=True))
    for key, value in changes.items():
        if value is ABSENT:
            del fields[key]
        else:
            fields[key] = value
    return urlencode(fields).encode()


def status(value: str, **changes: Any) -> bytes:
    return form(DELIVERED, Status=value, **changes)


def media(*keys: str) -> dict[str, str]:
    """Media<n> fields, each URL naming its key."""
    return {key: f"{MEDIA}{key}" for key in keys}


def hosted(*names: str) -> list[Media]:
    """The records' media for URLs at Plivo ending in `names`."""
    return [Media(f"{MEDIA}{name}", filename=name, status="provider") for name in names]


TABLE = [
    # No MMS callback is published anywhere (docs, SDK fixtures, courier): these two are
    # written from the documented parameter list (tests/payloads/plivo/README.md).
    Case("inbound MMS, media numbered from 1 (docs)", file=INBOUND, headers=FORM, golden=True),
    Case(
        "inbound MMS, media numbered from 0 (support article), empty Body",
        file="inbound_mms_media0.written.form",
        headers=FORM,
        golden=True,
    ),
    # A real capture (courier's comment): no Type, no times, no Sequence; accepted.
    Case(
        "delivered status as captured: no Type, ErrorCode empty",
        file="status_delivered.courier_comment.form",
        headers=FORM,
        golden=True,
    ),
    Case("delivered MMS status, every field", file=DELIVERED, headers=FORM, golden=True),
    Case(
        "undelivered MMS status with an ErrorCode",
        file="status_undelivered_mms.written.form",
        headers=FORM,
        golden=True,
    ),
    Case(
        "queued is sending",
        body=status("queued", Sequence="1"),
        headers=FORM,
        fields={"event_type": "sending", "attributes": including({"Status": "queued"})},
    ),
    Case("sent", body=status("sent", Sequence="2"), headers=FORM, fields={"event_type": "sent"}),
    Case(
        "failed before a carrier, with its code",
        body=status("failed", ErrorCode="10"),
        headers=FORM,
        fields={"event_type": "failed", "error_code": "10"},
    ),
    Case(
        "rejected (legacy) is failed",
        body=status("rejected", ErrorCode="30"),
        headers=FORM,
        fields={"event_type": "failed", "error_code": "30"},
    ),
    Case(
        "read is delivered, the raw status kept",
        body=status("read"),
        headers=FORM,
        fields={"event_type": "delivered", "attributes": including({"Status": "read"})},
    ),
    Case(
        "media in numeric order whatever the body's order, Media0 and leading zeros too",
        body=form(INBOUND, Media1=ABSENT, **media("Media10", "Media2", "Media0"))
        + b"&Media02="
        + MEDIA.encode()
        + b"Media02",
        headers=FORM,
        fields={"media": hosted("Media0", "Media2", "Media02", "Media10")},
    ),
    Case(
        "a Media key of 5,000 digits: no field name is that long (it would be an attribute key)",
        body=form(INBOUND, **media("Media" + "9" * 5000)),
        headers=FORM,
        refused=("name_too_long", 413),
    ),
    Case(
        "a Media key of 100 digits sorts last (int() is never called on it)",
        body=form(INBOUND, **media("Media" + "9" * 100)),
        headers=FORM,
        fields={"media": hosted(*INBOUND_MEDIA, "Media" + "9" * 100)},
    ),
    Case(
        "MediaCount is a cross-check only: every Media<n> is taken",
        body=form(INBOUND, MediaCount="1"),
        headers=FORM,
        fields={"media": hosted(*INBOUND_MEDIA), "attributes": including({"MediaCount": "1"})},
    ),
    Case(
        "a non-http media URL and an empty one are kept in attributes, not media",
        body=form(INBOUND, Media1="file:///etc/passwd", Media2=""),
        headers=FORM,
        fields={
            "media": [],
            "attributes": including(
                {
                    "media.0.refused": '{"code":"unsupported_media_uri","uri":"file:///etc/passwd"}',
                    "media.1.refused": '{"code":"unsupported_media_uri","uri":""}',
                }
            ),
        },
    ),
    Case(
        "no Body: Text is the text",
        body=form(INBOUND, Body=ABSENT, Text="from Text"),
        headers=FORM,
        fields={"text": "from Text", "attributes": including({"Text": ABSENT})},
    ),
    Case(
        "Body and Text: Body is the text, Text kept",
        body=form(INBOUND, Text="sms text"),
        headers=FORM,
        fields={"text": "Two from the hike 🏔️", "attributes": including({"Text": "sms text"})},
    ),
    Case(
        "Units that are no count stay attributes",
        body=form(INBOUND, Units="1.0"),
        headers=FORM,
        fields={"segment_count": None, "attributes": including({"Units": "1.0"})},
    ),
    Case(
        "Units past Avro's int stay attributes",
        body=form(INBOUND, Units="9" * 11),
        headers=FORM,
        fields={"segment_count": None, "attributes": including({"Units": "9" * 11})},
    ),
    Case(
        "long messages count their parts",
        body=form(INBOUND, Units="3"),
        headers=FORM,
        fields={"segment_count": 3, "attributes": including({"Units": ABSENT})},
    ),
    Case(
        "default country makes bare national numbers E.164",
        body=form(INBOUND, To="9195550002", From="7045551234"),
        headers=FORM,
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19195550002", "from": "+17045551234", "to": ["+19195550002"]},
    ),
    Case(
        "an alphanumeric sender id is our number on a status, as sent",
        body=status("sent", From="PLIVO"),
        headers=FORM,
        fields={"owner": "PLIVO", "from": "PLIVO", "direction": "outbound"},
    ),
    Case(
        "a status without To",
        body=status("sent", To=ABSENT),
        headers=FORM,
        fields={"to": [], "owner": "+14155550100"},
    ),
    Case(
        "an inbound message without From",
        body=form(INBOUND, From=ABSENT),
        headers=FORM,
        fields={"from": None, "owner": "+14155550100"},
    ),
    # SMS is not this connector's: the captured inbound message and courier's tests are SMS.
    Case(
        "inbound SMS as captured",
        file="inbound_sms.courier_comment.form",
        headers=FORM,
        refused=("not_mms", 400),
    ),
    Case(
        "inbound SMS to a short code (courier's test)",
        file="inbound_sms.courier_test.form",
        headers=FORM,
        refused=("not_mms", 400),
    ),
    # Courier's tests write `status`: Plivo's names are case-sensitive, so these are messages
    # without Type, which Plivo's default makes SMS.
    Case(
        "lowercase status is no Status (courier's test, delivered)",
        file="status_delivered.courier_test.form",
        headers=FORM,
        refused=("not_mms", 400),
    ),
    Case(
        "lowercase status is no Status (courier's test, sent)",
        file="status_sent.courier_test.form",
        headers=FORM,
        refused=("not_mms", 400),
    ),
    Case(
        "inbound WhatsApp",
        body=form(INBOUND, Type="whatsapp"),
        headers=FORM,
        refused=("not_mms", 400),
    ),
    Case(
        "status of an SMS", body=status("sent", Type="sms"), headers=FORM, refused=("not_mms", 400)
    ),
    Case(
        "an inbound message without Type",
        body=form(INBOUND, Type=ABSENT),
        headers=FORM,
        refused=("not_mms", 400),
    ),
    Case(
        "a status Plivo does not send",
        body=status("expired"),
        headers=FORM,
        refused=("unknown_event_type", 400),
    ),
    Case("an empty Status", body=status(""), headers=FORM, refused=("unknown_event_type", 400)),
    Case(
        "no MessageUUID",
        body=form(INBOUND, MessageUUID=ABSENT),
        headers=FORM,
        refused=("missing_field", 400),
    ),
    Case(
        "inbound without To",
        body=form(INBOUND, To=ABSENT),
        headers=FORM,
        refused=("missing_field", 400),
    ),
    Case(
        "status without From",
        body=status("sent", From=""),
        headers=FORM,
        refused=("missing_field", 400),
    ),
    Case("blank owner", body=form(INBOUND, To=" "), headers=FORM, refused=("missing_field", 400)),
    Case(
        "a field sent twice",
        body=form(INBOUND) + b"&To=14155550999",
        headers=FORM,
        refused=("duplicate_field", 400),
    ),
    Case(
        "percent-escapes that are no UTF-8",
        body=form(INBOUND) + b"&X=%ff",
        headers=FORM,
        refused=("invalid_form", 400),
    ),
    Case(
        "a unit separator in an id could collide with another event's id",
        body=form(INBOUND, MessageUUID="m-1\x1fx"),
        headers=FORM,
        refused=("invalid_id", 400),
    ),
    Case(
        "one field past the default elements budget",
        body=form(INBOUND) + b"".join(b"&f%d=" % i for i in range(10_000)),
        headers=FORM,
        refused=("too_many_elements", 413),
    ),
    Case(
        "one medium past the default media budget",
        body=form(INBOUND, **media(*(f"Media{i}" for i in range(1, 52)))),
        headers=FORM,
        refused=("too_many_media", 413),
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_tell_statuses_apart_and_inbound_is_its_message() -> None:
    translate = harness.Translator(NAME)
    [inbound] = translate(payload(MODULE, INBOUND), FORM)
    assert inbound.event_id == event_id(NAME, "2a9c3e5e-7c4d-11ef-b4f1-0242ac110004")
    ids = {
        translate(status(value, Sequence=sequence), FORM)[0].event_id
        for value, sequence in [("queued", "1"), ("sent", "2"), ("delivered", "3")]
    }
    assert len(ids) == 3
    # The same status again, with another Sequence, is another callback.
    assert translate(status("sent", Sequence="4"), FORM)[0].event_id not in ids


def test_accepted_and_dead_lettered_callbacks_get_an_empty_200() -> None:
    """Any 2xx stops Plivo's retries; a body on an inbound message would be read as Plivo XML."""
    [event] = harness.Translator(NAME)(PROVIDER.sample.body, FORM)
    refusal = Refusal("not_mms", "Type 'sms' is not an MMS")
    for reply in (PROVIDER.accepted([event]), PROVIDER.dead_lettered(refusal)):
        assert (reply.status, reply.body) == (200, b"")
    refused = PROVIDER.refused(refusal)
    assert (refused.status, orjson.loads(refused.body)["error"]) == (400, "not_mms")


# --- the V3 signature ------------------------------------------------------------------------

# plivo/plivo-go utils_test.go TestValidateSignatureV3Pass1 and Pass3 (POST) at commit
# 273a8369467eeb2e2603d3916a0f6587dbde4ec4; the same in plivo/plivo-ruby
# spec/signature_spec.rb at 52737a894c1de9cc1256d431bf74e45f11579042. Voice parameters, posted
# here as the form they would be.
TOKEN = b"Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
NONCE = "31627761595286130198"
VECTOR_PARAMS = {
    "Direction": "outbound",
    "From": "19792014278",
    "ALegUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "CallStatus": "in-progress",
    "BillRate": "0.002",
    "ParentAuthID": "MANWVLYTK4ZWU1YTY4QA",
    "To": "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
    "ALegRequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "CallUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "RequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "SIP-H-To": "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
    "SessionStart": "2020-04-08 11:34:33.238707",
    "Event": "StartApp",
}
VECTOR_URL = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"
VECTORS = [
    (f"{VECTOR_URL}/?a=b&c=d", "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="),
    (VECTOR_URL, "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
]


def signed(url: str, body: bytes, headers: dict[str, str]) -> Signed:
    return Signed(url, {NONCE_HEADER: NONCE, **headers}, body, 0.0)


@pytest.mark.parametrize(("url", "expected"), VECTORS)
def test_the_sdks_v3_vectors_verify(url: str, expected: str) -> None:
    body = urlencode(VECTOR_PARAMS).encode()
    # Among others (a rotation signs with both tokens), and with the wrong key configured too.
    request = signed(url, body, {SIGNATURE_HEADER: f"c2lnbmVkIGJ5IGFub3RoZXI=,{expected}"})
    SIGNATURE.verify(request, [b"another token", TOKEN], 300.0)
    with pytest.raises(Refusal, match="signature_invalid"):
        SIGNATURE.verify(request, [b"another token"], 300.0)


def test_the_signed_message_is_plivos() -> None:
    # Query sorted, "." then the body's parameters sorted by code point (SIP-H-To before
    # SessionStart), each key then its decoded value, then "." and the nonce.
    [message] = SIGNATURE.signed(signed(VECTORS[0][0], urlencode(VECTOR_PARAMS).encode(), {}))
    assert message.decode() == (
        f"{VECTOR_URL}/?a=b&c=d.ALegRequestUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"
        "ALegUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36BillRate0.002CallStatusin-progress"
        "CallUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36DirectionoutboundEventStartApp"
        "From19792014278ParentAuthIDMANWVLYTK4ZWU1YTY4QA"
        "RequestUUID3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"
        "SIP-H-To<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1"
        "SessionStart2020-04-08 11:34:33.238707"
        "Tosip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com"
        f".{NONCE}"
    )
    # No query: "?" all the same; an empty value (ErrorCode=) is its key alone; "+" a space.
    body = payload(MODULE, "status_delivered.courier_comment.form")
    [message] = SIGNATURE.signed(signed("https://mms.example.com/callbacks/plivo", body, {}))
    assert message.decode() == (
        "https://mms.example.com/callbacks/plivo?ErrorCodeFrom13342031111MCC405MNC803"
        "MessageUUID83876bdb-2033-4876-bfaf-0ff8693705af"
        "ParentMessageUUID83876bdb-2033-4876-bfaf-0ff8693705afPartInfo1 of 1Statusdelivered"
        f"To918553651111TotalAmount0.0025TotalRate0.0025Units1.{NONCE}"
    )


def test_the_main_accounts_signature_verifies() -> None:
    """A subaccount's number: Ma-V3 is signed with the main account's token."""
    body = urlencode(VECTOR_PARAMS).encode()
    url, expected = VECTORS[1]
    headers = {SIGNATURE_HEADER: "c3ViYWNjb3VudA==", "x-plivo-signature-ma-v3": expected}
    SIGNATURE.verify(signed(url, body, headers), [TOKEN], 300.0)


def test_a_body_that_is_no_form_is_refused_while_verifying() -> None:
    request = signed(VECTOR_URL, b"a=%ff", {SIGNATURE_HEADER: VECTORS[1][1]})
    with pytest.raises(Refusal) as info:
        SIGNATURE.verify(request, [TOKEN], 300.0)
    # No key verifies a body Plivo cannot have signed (signatures.Hmac, for every provider).
    assert (info.value.code, info.value.status) == ("signature_invalid", 403)
    assert "invalid_form" in info.value.detail
