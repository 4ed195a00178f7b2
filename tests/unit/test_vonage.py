"""Vonage Messages API (channel mms) webhooks to canonical records: the table (tests/harness.py
runs it), golden records beside the payloads in tests/payloads/vonage/ (README.md there says
which are Vonage's and which are ours), the signature's known answers and the replies."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from connector.providers import PROVIDERS
from connector.providers.contract import Refusal
from connector.providers.signatures import JwtBodyHash, Signed
from connector.providers.vonage import NAME
from connector.record import Media, event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import payload

MODULE = harness.module_of(NAME)
JSON = {"Content-Type": "application/json"}
IMAGE = "written_inbound_mms_image_and_video.json"
DELIVERED = "written_status_delivered.json"
MEDIA_URL = "https://api-us.nexmo.com/v3/media/"
IMAGE_ID = "1b456509-974c-458b-aafa-45fc48a4d976"  # IMAGE's picture


def inbound(changes: dict[str, object]) -> bytes:
    """Our inbound image MMS with fields replaced (paths as harness.variant takes them)."""
    return harness.variant(MODULE, IMAGE, changes)


def status(changes: dict[str, object]) -> bytes:
    """Our delivered status webhook with fields replaced."""
    return harness.variant(MODULE, DELIVERED, changes)


def provided(i: int) -> Media:
    """Attachment `i` of `items`, still at Vonage (the mirror fetches it)."""
    return Media(f"{MEDIA_URL}{i}", filename=str(i), status="provider")


def items(count: int) -> list[dict[str, str]]:
    return [{"type": "image", "url": f"{MEDIA_URL}{i}"} for i in range(count)]


TABLE = [
    # Ours, as Vonage documents an MMS: the caption is the text, content[] repeats the image.
    Case("inbound image MMS with a caption and a video", file=IMAGE, golden=True),
    Case(
        "inbound vCard MMS (Java SDK test shape)",
        file="written_inbound_mms_vcard.json",
        golden=True,
    ),
    Case("submitted, charged", file="written_status_submitted.json", golden=True),
    Case("delivered", file=DELIVERED, golden=True),
    Case("rejected with an RFC 7807 error", file="written_status_rejected.json", golden=True),
    # Vonage's own fixtures (.NET SDK) with only the channel made mms: every field they show.
    Case(
        "the .NET SDK's all-fields inbound fixture, as mms",
        file="inbound_allfields_dotnet_sdk_fixture_as_mms.json",
        golden=True,
    ),
    Case(
        "the .NET SDK's status fixture, as mms: an error on a submitted message is kept",
        file="status_submitted_dotnet_sdk_fixture_as_mms.json",
        golden=True,
    ),
    Case(
        "read (an OTT status) is delivered, the raw status beside it",
        body=status({"status": "read"}),
        fields={"event_type": "delivered", "attributes": including({"status": "read"})},
    ),
    Case(
        "undeliverable (no route to the carrier) is failed",
        body=status({"status": "undeliverable"}),
        fields={"event_type": "failed", "attributes": including({"status": "undeliverable"})},
    ),
    Case(
        "a numeric error title is the code",
        body=status({"status": "rejected", "error": {"title": 1330, "detail": "Unknown"}}),
        fields={"event_type": "failed", "error_code": "1330", "error_description": "Unknown"},
    ),
    Case(
        "an error that is no object stays in attributes",
        body=status({"error": "boom"}),
        fields={"error_code": None, "attributes": including({"error": "boom"})},
    ),
    Case(
        "a text-only MMS",
        body=inbound(
            {"message_type": "text", "text": "Ünïcödé ✓ 🎉", "image": ABSENT, "content": ABSENT}
        ),
        fields={"text": "Ünïcödé ✓ 🎉", "media": [], "event_type": "received"},
    ),
    Case(
        "text beside a caption: the text is the text, the caption stays in attributes",
        body=inbound({"text": "hello", "content": ABSENT}),
        fields={
            "text": "hello",
            "attributes": including({"image.caption": "Photos from the game"}),
        },
    ),
    Case(
        "an attachment's name is its filename (as sent in attributes), made safe",
        body=inbound({"image.name": "../../etc/passwd", "content": ABSENT}),
        fields={
            "media": [replace(provided(0), uri=f"{MEDIA_URL}{IMAGE_ID}", filename="passwd")],
            "attributes": including({"image.name": "../../etc/passwd"}),
        },
    ),
    Case(
        "a media URI that is no http(s) is kept in attributes with a code",
        body=inbound({"image.url": "file:///etc/passwd", "content": ABSENT}),
        fields={
            "media": [],
            "attributes": including(
                {"media.0.refused": '{"code":"unsupported_media_uri","uri":"file:///etc/passwd"}'}
            ),
        },
    ),
    Case(
        "millisecond timestamps",
        body=inbound({"timestamp": "2025-02-03T12:14:25.250Z"}),
        fields={"occurred_at": datetime(2025, 2, 3, 12, 14, 25, 250000, tzinfo=UTC)},
    ),
    Case(
        "default country makes bare national numbers E.164 (not how Vonage sends them)",
        body=inbound({"to": "9195550002", "from": "4155550100"}),
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19195550002", "from": "+14155550100", "to": ["+19195550002"]},
    ),
    Case(
        "50 distinct attachments, at the media budget",
        body=inbound({"image.url": f"{MEDIA_URL}0", "content": items(50)}),
        headers=JSON,
        fields={"media": [provided(i) for i in range(50)]},
    ),
    # Refused: Vonage's fixtures as they are, on other channels.
    Case(
        "the .NET SDK's inbound fixture is WhatsApp",
        file="inbound_allfields_dotnet_sdk_fixture.json",
        refused=("unsupported_channel", 400),
    ),
    Case(
        "the .NET SDK's status fixture is SMS",
        file="status_submitted_dotnet_sdk_fixture.json",
        refused=("unsupported_channel", 400),
    ),
    Case("not json", body=b"not json", refused=("invalid_json", 400)),
    Case("an array", body=b"[{}]", refused=("invalid_event", 400)),
    Case("deep nesting", body=b"[" * 100 + b"]" * 100, refused=("json_too_deep", 400)),
    Case("no channel", body=status({"channel": ABSENT}), refused=("missing_field", 400)),
    Case(
        "a Messages API v0.1 webhook (to and from as objects)",
        body=b'{"message_uuid": "m", "to": {"type": "mms", "number": "12015550123"},'
        b' "from": {"type": "mms", "number": "14155550100"},'
        b' "message": {"content": {"type": "text", "text": "hi"}}}',
        refused=("legacy_format", 400),
    ),
    Case("no message_uuid", body=status({"message_uuid": ABSENT}), refused=("missing_field", 400)),
    Case(
        "neither status nor message_type",
        body=status({"status": ABSENT}),
        refused=("unknown_event_type", 400),
    ),
    Case("unknown status", body=status({"status": "failed"}), refused=("unknown_event_type", 400)),
    Case(
        "an unknown message type",
        body=inbound({"message_type": "sticker"}),
        refused=("unknown_message_type", 400),
    ),
    Case("image without object", body=inbound({"image": ABSENT}), refused=("missing_field", 400)),
    Case("image without url", body=inbound({"image.url": ABSENT}), refused=("missing_field", 400)),
    Case("content no list", body=inbound({"content": "x"}), refused=("invalid_field", 400)),
    Case(
        "content item not object", body=inbound({"content": ["x"]}), refused=("invalid_field", 400)
    ),
    Case(
        "content item without a url",
        body=inbound({"content": [{"type": "image"}]}),
        refused=("missing_field", 400),
    ),
    Case("bad timestamp", body=status({"timestamp": "yesterday"}), refused=("invalid_time", 400)),
    Case(
        "status without our number", body=status({"from": ABSENT}), refused=("missing_field", 400)
    ),
    Case("inbound to a blank number", body=inbound({"to": " "}), refused=("missing_field", 400)),
    Case(
        "a unit separator in an id could collide with another event's id",
        body=status({"message_uuid": "m-1\x1fx"}),
        refused=("invalid_id", 400),
    ),
    Case(
        "one attachment past the default media budget",
        body=inbound({"image.url": f"{MEDIA_URL}0", "content": items(51)}),
        headers=JSON,
        refused=("too_many_media", 413),
    ),
    Case(
        "10 MB of {},{},... refused before parsing",
        body=b'{"filler": [' + b"{}," * 3_000_000 + b"{}]}",
        headers=JSON,
        refused=("too_many_elements", 413),
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_come_from_the_message_and_are_stable_across_retries() -> None:
    translate = harness.Translator(NAME)
    [received] = translate(payload(MODULE, IMAGE))
    assert received.event_id == event_id(NAME, "3f0f5a3e-7c0e-4b6e-9a55-1f2d0c8e6b41", "inbound")
    [delivered] = translate(payload(MODULE, DELIVERED))
    assert delivered.event_id == event_id(
        NAME, "9d1c0b7a-6e5f-4a3b-8c2d-1e0f9a8b7c6d", "delivered", "2025-02-03T12:30:04.512Z"
    )
    # Every status of one message is its own event; a retry of one is the same event.
    [submitted] = translate(payload(MODULE, "written_status_submitted.json"))
    assert submitted.provider_message_id == delivered.provider_message_id
    assert submitted.event_id != delivered.event_id
    assert [e.event_id for e in translate(payload(MODULE, DELIVERED))] == [delivered.event_id]


# --- the signature: Authorization: Bearer <JWT>, HS256, payload_hash = SHA-256 of the body ------

# Vonage Ruby SDK, test/vonage/test.rb @ 1eecb89963f796e34c1cb4274860a2f44d504ac1:
# sample_webhook_token, signed with sample_valid_signature_secret; its claims are the docs'
# sample (iat 1587494962, payload_hash d6c0e74b...031b of a body Vonage never published).
RUBY_TOKEN = payload(MODULE, "signed_jwt_ruby_sdk_sample_webhook_token.txt").decode()
RUBY_SECRET = "ZYtdTtGV3BCFN7tWmOWr1md66XsquMggr4W2cTtXtcPgfnI0Xw"
RUBY_INVALID_SECRET = "ZYtdTtGV3BCFN7tWmOWr1md66XsquMggr4W2cTtXtcPgf55555"  # the SDK's own
RUBY_IAT = 1587494962
# Ours, not Vonage's: the same secret and the docs' claims, iat 1738584865, payload_hash of the
# exact bytes of status_submitted_dotnet_sdk_fixture.json (a8f478e3...9718).
OUR_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3Mzg1ODQ4NjUsImp0aSI6IjAwMDAwMDAwLTAwMDAt"
    "NDAwMC04MDAwLTAwMDAwMDAwMDAwMCIsImlzcyI6IlZvbmFnZSIsInBheWxvYWRfaGFzaCI6ImE4ZjQ3OGUzYmQy"
    "Mzc3MDA3YjM3ODM2ZmFkZTA2NWUyZGU1MjJkYTg3MTE1MDZkMWEwNDQyN2I0MjFiNDk3MTgiLCJhcGlfa2V5Ijoi"
    "YTFiMmMzZCIsImFwcGxpY2F0aW9uX2lkIjoiYWFhYWFhYWEtYmJiYi1jY2NjLWRkZGQtMDEyMzQ1Njc4OWFiIn0"
    ".721XsTgyDQG11AcaWh9NTwaU9Bp1KuKjyWALZCXxn3s"
)
OUR_IAT = 1738584865
URL = "https://mms.example.com/callbacks/vonage"


def verify(token: str, secret: str, body: bytes, now: float) -> object:
    signature = PROVIDERS[NAME].signature
    assert isinstance(signature, JwtBodyHash)
    headers = {"authorization": f"Bearer {token}"}
    try:
        signature.verify(Signed(URL, headers, body, now), [signature.key(secret)], 300.0)
    except Refusal as refusal:
        return refusal.code, refusal.status, refusal.detail
    return 200


def test_the_ruby_sdk_token_passes_its_signature_and_iat_then_stops_at_the_body_hash() -> None:
    # Any body we can send is not the unpublished one: the last check, after the signature
    # and iat passed, refuses it.
    body = payload(MODULE, DELIVERED)
    assert verify(RUBY_TOKEN, RUBY_SECRET, body, RUBY_IAT + 10) == (
        "signature_invalid",
        403,
        "the token's payload_hash is not the body's",
    )
    assert verify(RUBY_TOKEN, RUBY_SECRET, body, RUBY_IAT + 301)[:2] == ("signature_stale", 403)


def test_the_ruby_sdk_token_does_not_verify_with_the_sdks_invalid_secret() -> None:
    assert verify(RUBY_TOKEN, RUBY_INVALID_SECRET, b"{}", RUBY_IAT) == (
        "signature_invalid",
        403,
        "the authorization token does not verify with any configured key",
    )


def test_our_token_over_the_dotnet_fixture_verifies_and_binds_that_body() -> None:
    body = payload(MODULE, "status_submitted_dotnet_sdk_fixture.json")
    assert verify(OUR_TOKEN, RUBY_SECRET, body, OUR_IAT) == 200
    assert verify(OUR_TOKEN, RUBY_SECRET, body + b"\n", OUR_IAT)[:2] == ("signature_invalid", 403)


# --- replies ---------------------------------------------------------------------------------


def test_accepted_is_200_with_the_event_ids() -> None:
    events = harness.Translator(NAME)(payload(MODULE, IMAGE))
    reply = PROVIDERS[NAME].accepted(events)
    assert reply.status == 200
    assert orjson.loads(reply.body)["event_ids"] == [events[0].event_id]


@pytest.mark.parametrize("status", [400, 413])
def test_a_dead_lettered_webhook_is_answered_200_naming_the_refusal(status: int) -> None:
    refusal = Refusal("unsupported_channel", "channel 'sms': this connector takes mms only", status)
    reply = PROVIDERS[NAME].dead_lettered(refusal)
    assert (reply.status, reply.media_type) == (200, "application/json")
    assert orjson.loads(reply.body) == {
        "status": "dead_lettered",
        "error": "unsupported_channel",
        "detail": refusal.detail,
    }
