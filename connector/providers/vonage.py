"""Vonage Messages API (v1) webhooks, channel mms: one JSON object per request.

Two kinds, told apart by their fields. The Inbound Message webhook is an MMS from a handset to
our number: `message_type` text, image, audio, video, vcard or file, the attachment at
`<message_type>.url` (with a `caption` and a `name`), further attachments in `content[]`. The
Message Status webhook reports an MMS we sent: `status` submitted, delivered, rejected,
undeliverable or read, an RFC 7807 `error` and the charge (`usage`). Other channels (sms,
whatsapp, ...) are refused: this is an MMS connector. Both carry `Authorization: Bearer <JWT>`
(HS256 with the account's signature secret, `payload_hash` the body's SHA-256).

Vonage retries 429 and 5xx answers (from ~5 s, doubling up to 15 min, for 24 h) and drops any
other, so a refusal (4xx) is final; its docs ask for a 200 on every webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from connector.providers.contract import (
    Callback,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
    dead_lettered_200,
)
from connector.providers.fields import (
    event_id,
    expect_str,
    media_from_urls,
    normalize_parties,
    optional_time,
    our_number,
    parse_json,
    require_str,
    safe_filename,
)
from connector.providers.signatures import JwtBodyHash
from connector.record import Direction, EventType, Media, MmsEvent, flatten_attributes

NAME = "vonage"
CHANNEL = "mms"

STATUSES: dict[str, EventType] = {
    "submitted": "sending",  # handed to the carrier; MMS is charged here
    "delivered": "delivered",
    "read": "delivered",  # documented for OTT channels only; kept should a carrier send it
    "rejected": "failed",
    "undeliverable": "failed",
}
# Inbound message types whose attachment is in the object named after the type.
ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "vcard", "file"})
MESSAGE_TYPES = ATTACHMENT_TYPES | {"text"}

# Fields with a canonical home in both kinds; everything else lands in attributes. `status`
# stays there (read and delivered, rejected and undeliverable share an event_type), and so
# does `content`: its items' type and caption have no canonical home.
CONSUMED = {
    "channel", "message_uuid", "to", "from", "timestamp", "client_ref", "error.title",
    "error.detail",
}  # fmt: skip


class Kind(NamedTuple):
    """What tells the two webhooks apart in their record."""

    event_type: EventType
    direction: Direction
    identity: tuple[object, ...]  # beside the message_uuid
    consumed: set[str]
    text: str | None = None
    attachments: tuple[tuple[str, str | None], ...] = ()  # (url, name as sent)


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    data = parse_json(callback.body, max_elements=ctx.limits.max_elements)
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected one JSON object per webhook")
    if isinstance(data.get("to"), dict) or isinstance(data.get("from"), dict):
        raise Refusal(
            "legacy_format",
            "to/from as objects: a Messages API v0.1 webhook (set the account to Messages API v1)",
        )
    channel = expect_str(data.get("channel"), "channel", required=True)
    if channel != CHANNEL:
        raise Refusal("unsupported_channel", f"channel {channel!r}: this connector takes mms only")
    message_uuid = expect_str(data.get("message_uuid"), "message_uuid", required=True)
    kind = _kind(data)

    raw_from = expect_str(data.get("from"), "from")
    raw_to = [to] if (to := expect_str(data.get("to"), "to")) is not None else []
    parties = normalize_parties(
        our_number(kind.direction, raw_from, raw_to),
        raw_from,
        raw_to,
        ctx.default_country,
        max_recipients=ctx.limits.max_recipients,
    )
    attributes = flatten_attributes(data, kind.consumed) | parties.raw
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}  # an odd `error` stays in attributes as sent
    return [
        MmsEvent(
            event_id=event_id(NAME, message_uuid, *kind.identity),
            provider=NAME,
            event_type=kind.event_type,
            direction=kind.direction,
            owner=parties.owner,
            received_at=callback.received_at,
            from_=parties.from_,
            to=parties.to,
            text=kind.text,
            media=_media(kind.attachments, attributes, ctx.limits.max_media),
            provider_message_id=message_uuid,
            tag=expect_str(data.get("client_ref"), "client_ref"),
            occurred_at=optional_time(data.get("timestamp"), "timestamp"),
            # `title` is the numeric code ("1360"); `type` (its docs URL) stays in attributes.
            error_code=expect_str(error.get("title"), "error.title"),
            error_description=expect_str(error.get("detail"), "error.detail"),
            attributes=attributes,
        )
    ]


def _kind(data: dict[str, Any]) -> Kind:
    if data.get("status") is not None:
        return _status(data)
    if data.get("message_type") is not None:
        return _inbound(data)
    raise Refusal("unknown_event_type", "neither status nor message_type: no Messages API webhook")


def _status(data: dict[str, Any]) -> Kind:
    raw_status = expect_str(data.get("status"), "status", required=True)
    event_type = STATUSES.get(raw_status or "")
    if event_type is None:
        raise Refusal("unknown_event_type", f"status {raw_status!r} is not a message status")
    # One message has one webhook per status; a retry repeats its timestamp.
    return Kind(event_type, "outbound", (raw_status, data.get("timestamp")), CONSUMED)


def _inbound(data: dict[str, Any]) -> Kind:
    message_type = expect_str(data.get("message_type"), "message_type", required=True)
    if message_type not in MESSAGE_TYPES:
        raise Refusal("unknown_message_type", f"message_type {message_type!r} is not an MMS type")
    consumed = CONSUMED | {"message_type", "text"}
    text = expect_str(data.get("text"), "text")
    attachments: list[tuple[str, str | None]] = []
    if message_type in ATTACHMENT_TYPES:
        primary = data.get(message_type)
        if not isinstance(primary, dict):
            raise Refusal("missing_field", f"{message_type} (the attachment) is required")
        # required=True refuses a missing value, so this is a str.
        url = require_str(primary.get("url"), f"{message_type}.url")
        attachments.append((url, expect_str(primary.get("name"), f"{message_type}.name")))
        consumed.add(f"{message_type}.url")
        if text is None:
            # An MMS's text arrives as the caption of its attachment.
            text = expect_str(primary.get("caption"), f"{message_type}.caption")
            consumed.add(f"{message_type}.caption")
    attachments += _content(data.get("content"))
    # The message's uuid is the inbound message: retries and nothing else repeat it.
    return Kind("received", "inbound", ("inbound",), consumed, text, tuple(attachments))


def _content(value: Any) -> list[tuple[str, str | None]]:
    """The further attachments of an MMS (`content[]`: present with more than one)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Refusal("invalid_field", "content: expected a list of attachments")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise Refusal("invalid_field", f"content[{i}]: expected an object")
        url = require_str(item.get("url"), f"content[{i}].url")
        out.append((url, expect_str(item.get("name"), f"content[{i}].name")))
    return out


def _media(
    attachments: Sequence[tuple[str, str | None]], attributes: dict[str, str], max_media: int
) -> list[Media]:
    """Each attachment once (`content[]` may repeat the main one), named as sent where it has a
    name: Vonage's media URLs end in a bare UUID."""
    urls = list(dict.fromkeys(url for url, _ in attachments))
    names = {url: name for url, name in reversed(attachments) if name}  # the first name wins
    media = media_from_urls(urls, attributes, max_media, "attachments")
    return [replace(m, filename=safe_filename(names.get(m.uri)) or m.filename) for m in media]


SAMPLE = Sample(
    b'{"channel": "mms", "message_uuid": "3f0f5a3e-7c0e-4b6e-9a55-1f2d0c8e6b41",'
    b' "to": "12015550123", "from": "14155550100", "timestamp": "2025-02-03T12:14:25Z",'
    b' "message_type": "image", "image": {"url":'
    b' "https://api-us.nexmo.com/v3/media/1b456509-974c-458b-aafa-45fc48a4d976",'
    b' "caption": "Here is the photo from Saturday"}, "origin": {"network_code": "310260"}}',
    "application/json",
    "an inbound MMS with one picture (hosted by Vonage for 48 h: the mirror fetches it)",
)
PROVIDER = Provider(
    NAME,
    translate,
    SAMPLE,
    # A 4xx would end Vonage's retries too, but its docs ask "at the very least" for a 200 on
    # every webhook, to avoid callback queuing (callbacks are queued per message).
    dead_lettered=dead_lettered_200,
    # Vonage retries for 24 hours and does not say whether a retry is signed again: a 403 for
    # a retry carrying its first `iat` would lose the message, a replay is only a duplicate.
    # An unsigned webhook follows an error on Vonage's side; a 5xx makes it resend it signed.
    signature=JwtBodyHash(max_age_seconds=86_400, unsigned_status=503),
)
