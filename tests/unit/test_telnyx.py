"""Telnyx webhooks to canonical records: the table (tests/harness.py runs it), golden records
beside the payloads in tests/payloads/telnyx/, and the Ed25519 signature's known answers."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from connector.providers.contract import Refusal
from connector.providers.signatures import Signed
from connector.providers.telnyx import NAME, PROVIDER, SIGNATURE, STATUSES
from connector.record import event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import payload

MODULE = harness.module_of(NAME)
JSON = {"Content-Type": "application/json"}
INBOUND = "inbound_mms.telnyx-dotnet.json"
SENT = "message_sent_mms.openapi-example.json"
GROUP_RECEIVED = "inbound_group_mms.ours.json"
GROUP_FINALIZED = "finalized_group_mms.ours.json"
EVENT = orjson.loads(payload(MODULE, INBOUND))
RECIPIENT = orjson.loads(payload(MODULE, SENT))["data"]["payload"]["to"][0]
URL = "https://example.com/a.jpg"


def changed(file: str, changes: dict[str, Any]) -> bytes:
    """A payload file with fields replaced (paths as in harness.variant)."""
    return harness.variant(MODULE, file, changes)


def inbound(changes: dict[str, Any]) -> bytes:
    return changed(INBOUND, {f"data.payload.{k}": v for k, v in changes.items()})


def sent(changes: dict[str, Any]) -> bytes:
    return changed(SENT, {f"data.payload.{k}": v for k, v in changes.items()})


def status_row(status: str) -> Case:
    return Case(
        f"to[].status {status}",
        body=sent({"to.0.status": status}),
        fields={
            "event_type": STATUSES[status],
            "attributes": including({"data.payload.to.0.status": status}),
        },
    )


TABLE = [
    Case(
        "inbound MMS captured by telnyx-dotnet: hash_sha256, S3 URL, empty text, CRLF",
        file=INBOUND,
        golden=True,
    ),
    Case(
        "inbound MMS of the receive-message docs: sha256 for the hash, no meta",
        file="inbound_mms.docs-receive-message.json",
        golden=True,
    ),
    Case(
        "message.sent MMS of the OpenAPI example: queued is sending, media not described",
        file=SENT,
        golden=True,
    ),
    Case("group MMS received: ours in to, the others in cc", file=GROUP_RECEIVED, golden=True),
    Case(
        "group MMS finalized: a record per recipient, the error by its pointer",
        file=GROUP_FINALIZED,
        golden=True,
    ),
    # The SMS webhooks Telnyx posts to the same URL: refused, this is an MMS connector.
    Case(
        "inbound SMS of the docs",
        file="inbound_sms.docs-receiving-webhooks.json",
        refused=("not_mms", 400),
    ),
    Case(
        "message.sent SMS of the docs",
        file="message_sent.docs-receiving-webhooks.json",
        refused=("not_mms", 400),
    ),
    Case(
        "message.finalized SMS of the docs",
        file="status_finalized_delivered.docs-receiving-webhooks.json",
        refused=("not_mms", 400),
    ),
    Case(
        "message.finalized SMS captured by telnyx-dotnet",
        file="status_finalized_delivered.telnyx-dotnet.json",
        refused=("not_mms", 400),
    ),
    *[status_row(status) for status in STATUSES],
    Case(
        "an error naming no recipient is a failed recipient's",
        body=sent(
            {
                "to.0.status": "sending_failed",
                "errors": [{"code": "40008", "title": "Message filtered", "detail": "Spam"}],
            }
        ),
        fields={
            "event_type": "failed",
            "error_code": "40008",
            "error_description": "Message filtered",
            "attributes": including(
                {"data.payload.errors.0.detail": "Spam", "data.payload.errors.0.code": ABSENT}
            ),
        },
    ),
    Case(
        "an inbound message's errors stay in attributes",
        body=inbound({"errors": [{"code": "10007", "title": "Unexpected error"}]}),
        fields={
            "error_code": None,
            "attributes": including({"data.payload.errors.0.code": "10007"}),
        },
    ),
    Case(
        "2019 form: from and to as bare numbers",
        body=inbound({"from": "+19197891146", "to": "+19842550905"}),
        fields={"owner": "+19842550905", "from": "+19197891146", "to": ["+19842550905"]},
    ),
    Case(
        "a group copy naming no `to`: ours is the first cc",
        body=changed(GROUP_RECEIVED, {"data.payload.to": []}),
        fields={"owner": "+13125550003", "to": [], "cc": ["+13125550003", "+13125550004"]},
    ),
    Case(
        "null text and subject",
        body=inbound({"text": None, "subject": None}),
        fields={"text": None, "subject": None},
    ),
    Case(
        "media: a size as text and a cut hash stay in attributes",
        body=inbound({"media.0.size": "92084", "media.0.hash_sha256": "ab1c2d3e4f..."}),
        fields={
            "media": [including({"size": None, "sha256": None, "content_type": "image/jpeg"})],
            "attributes": including(
                {
                    "data.payload.media.0.size": "92084",
                    "data.payload.media.0.hash_sha256": "ab1c2d3e4f...",
                }
            ),
        },
    ),
    Case(
        "media: hash_sha256 before sha256, upper case read as lower",
        body=inbound({"media.0.hash_sha256": "AB" * 32, "media.0.sha256": "cd" * 32}),
        fields={
            "media": [including({"sha256": "ab" * 32})],
            "attributes": including({"data.payload.media.0.sha256": "cd" * 32}),
        },
    ),
    Case(
        "media: a file: URL is no medium, its entry is kept",
        body=inbound(
            {
                "media": [
                    {"url": "file:///etc/passwd", "content_type": "text/plain"},
                    {"url": URL, "size": 10},
                ]
            }
        ),
        fields={
            "media": [including({"uri": URL, "size": 10, "content_type": None})],
            "attributes": including(
                {
                    "media.0.refused": '{"code":"unsupported_media_uri","uri":"file:///etc/passwd"}',
                    "data.payload.media.0.content_type": "text/plain",
                }
            ),
        },
    ),
    Case(
        "default country makes bare national numbers E.164",
        body=inbound({"from.phone_number": "9197891146", "to.0.phone_number": "9842550905"}),
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19842550905", "from": "+19197891146", "to": ["+19842550905"]},
    ),
    Case("not json", body=b"not json", refused=("invalid_json", 400)),
    Case("an array", body=b'[{"data": {}}]', refused=("invalid_event", 400)),
    Case("data not an object", body=b'{"data": 5}', refused=("invalid_event", 400)),
    Case(
        "no payload",
        body=changed(INBOUND, {"data.payload": ABSENT}),
        refused=("missing_field", 400),
    ),
    Case(
        "a call event",
        body=changed(INBOUND, {"data.event_type": "call.initiated"}),
        refused=("unknown_event_type", 400),
    ),
    Case("no type", body=inbound({"type": ABSENT}), refused=("missing_field", 400)),
    Case(
        "direction against the event type",
        body=inbound({"direction": "outbound"}),
        refused=("invalid_field", 400),
    ),
    Case("no event id", body=changed(INBOUND, {"data.id": ABSENT}), refused=("missing_field", 400)),
    Case("no message id", body=inbound({"id": None}), refused=("missing_field", 400)),
    Case(
        "an inbound status on an outbound message",
        body=sent({"to.0.status": "webhook_delivered"}),
        refused=("unknown_event_type", 400),
    ),
    Case(
        "a recipient without status",
        body=sent({"to.0.status": ABSENT}),
        refused=("missing_field", 400),
    ),
    Case(
        "a recipient without number",
        body=sent({"to.0.phone_number": None}),
        refused=("missing_field", 400),
    ),
    Case("outbound to nobody", body=sent({"to": []}), refused=("missing_field", 400)),
    Case(
        "outbound from nobody",
        body=sent({"from.phone_number": " "}),
        refused=("missing_field", 400),
    ),
    Case(
        "inbound to no number",
        body=inbound({"to": [{"carrier": "Telnyx"}]}),
        refused=("missing_field", 400),
    ),
    Case(
        "bad time",
        body=changed(INBOUND, {"data.occurred_at": "yesterday"}),
        refused=("invalid_time", 400),
    ),
    Case("media not a list", body=inbound({"media": URL}), refused=("invalid_field", 400)),
    Case(
        "a unit separator in an id could collide with another event's id",
        body=changed(INBOUND, {"data.id": "0b39187e\x1fx"}),
        refused=("invalid_id", 400),
    ),
    Case("deep nesting", body=b"[" * 100 + b"]" * 100, refused=("json_too_deep", 400)),
    Case(
        "10 MB of [{},{},...] refused before parsing",
        body=b"[" + b"{}," * 3_000_000 + b"{}]",
        headers=JSON,
        refused=("too_many_elements", 413),
    ),
    Case(
        "one recipient past the events budget: each is a record",
        body=sent({"to": [{**RECIPIENT, "phone_number": f"+1866555{i:04d}"} for i in range(101)]}),
        headers=JSON,
        refused=("too_many_events", 413),
    ),
    Case(
        "one recipient past the recipients budget",
        body=inbound({"cc": [{"phone_number": f"+1866555{i:04d}"} for i in range(100)]}),
        headers=JSON,
        refused=("too_many_recipients", 413),
    ),
    Case(
        "one medium past the media budget",
        body=inbound({"media": [{"url": URL}] * 51}),
        headers=JSON,
        refused=("too_many_media", 413),
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_come_from_the_event_id_and_retries_keep_them() -> None:
    translate = harness.Translator(NAME)
    [first] = translate(payload(MODULE, INBOUND))
    assert first.event_id == event_id(NAME, "0b39187e-bbd3-438f-9c55-cf048e9a00c7")
    # Telnyx's third try, at the failover URL: the same event, told apart only by its meta.
    retry = changed(
        INBOUND, {"meta": {"attempt": 3, "delivered_to": "https://failover.example.com/t"}}
    )
    [again] = translate(retry)
    assert again.event_id == first.event_id
    assert again.attributes["delivery.attempt"] == "3"

    records = translate(payload(MODULE, GROUP_FINALIZED))
    numbers = ["+13125550002", "+13125550003", "+13125550004"]
    assert [r.event_id for r in records] == [
        event_id(NAME, "9f0e4c2a-6d1b-4e8f-a3c7-5b2d8e1f0a94", n) for n in numbers
    ]
    # Another event of the same message (its message.sent) has ids of its own.
    sent_event = changed(GROUP_FINALIZED, {"data.id": "1d2c3b4a-0000-4000-8000-000000000001"})
    assert not {r.event_id for r in translate(sent_event)} & {r.event_id for r in records}


def test_replies() -> None:
    assert PROVIDER.accepted([]).status == 200
    refusal = Refusal("not_mms", "data.payload.type 'SMS' is not an MMS")
    # Dead-lettered: a 2xx, or Telnyx retries it five more times.
    kept = PROVIDER.dead_lettered(refusal)
    assert kept.status == 200
    assert orjson.loads(kept.body) == {
        "status": "dead_lettered",
        "error": "not_mms",
        "detail": refusal.detail,
    }
    assert PROVIDER.refused(refusal).status == 400


# Known answers computed by us (Python `cryptography` 48), not Telnyx's: it publishes none, and
# its SDKs' tests sign with random keys. The private key is RFC 8032 §7.1 TEST 1's.
RFC8032_TEST1_SEED = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
)
RFC8032_TEST1_PUBLIC = bytes.fromhex(
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)
PUBLIC_KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="  # as Telnyx's portal shows keys
VECTORS = [
    (
        "1700000000",
        b'{"data":{"event_type":"message.received"}}',
        "K7VcG4FwrJElTZQuuMjgRsShfiMD/cRlI/rYFi/YZs0txJENzEiIIqL68zGgOekgF/ap1T7syscouYdDcaICBw==",
    ),
    (
        "1598467798",
        payload(MODULE, INBOUND),
        "LXwTBz3mQjp6fZruBWqfo/MpdoHS3RzAj7vIQ9igO3ZKDjHEcurcU4PtU4wY54llYisjmTGJDw7AwuHm7nTdDw==",
    ),
]


def verify(timestamp: str, body: bytes, signature: str, now: float) -> int | tuple[str, int]:
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": timestamp}
    try:
        # The URL is not signed: any will do.
        SIGNATURE.verify(Signed("https://h.example/t", headers, body, now), [key()], 300)
    except Refusal as refusal:
        return refusal.code, refusal.status
    return 200


def key() -> bytes:
    return SIGNATURE.key(PUBLIC_KEY)


def test_the_public_key_is_rfc_8032_test_1s() -> None:
    private = Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SEED)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public == RFC8032_TEST1_PUBLIC == key()
    assert base64.b64encode(public).decode() == PUBLIC_KEY


@pytest.mark.parametrize(("timestamp", "body", "signature"), VECTORS, ids=["short", "capture"])
def test_known_answers_verify_over_timestamp_bar_raw_body(
    timestamp: str, body: bytes, signature: str
) -> None:
    # Ed25519 is deterministic: signing again gives the very signature.
    private = Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SEED)
    assert base64.b64encode(private.sign(f"{timestamp}|".encode() + body)).decode() == signature
    at = float(timestamp)
    assert verify(timestamp, body, signature, now=at + 299) == 200
    assert verify(timestamp, body, signature, now=at + 301) == ("signature_stale", 403)
    assert verify(timestamp, body + b"\n", signature, now=at) == ("signature_invalid", 403)
    assert verify(str(int(at) + 1), body, signature, now=at) == ("signature_invalid", 403)
