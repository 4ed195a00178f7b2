"""Telnyx Messaging API v2 webhooks: one JSON event per POST, `{"data": {...}, "meta": {...}}`.

`data.event_type` is message.received (a message to our number), message.sent (handed to the
carrier) or message.finalized (a final state, one per message); `data.payload` is the message
and `data.id` the event's own id, the same on every retry. Outbound messages have a status per
recipient (`to[].status`): a group MMS can be delivered to one and fail for another, so each
recipient gets a record. SMS and MMS arrive at the same URL; SMS (`payload.type` "SMS") is
refused: this is an MMS connector, and the status events of an MMS say MMS. Telnyx signs with
Ed25519 and wants a 2xx within 2 s; it retries anything else (3xx and timeouts too) up to 3
times per URL, then at the profile's failover URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
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
    parse_json,
    require_str,
    segment_count,
)
from connector.providers.signatures import Ed25519
from connector.record import Direction, EventType, Media, MmsEvent, flatten_attributes

NAME = "telnyx"
MMS = "MMS"

DIRECTIONS: dict[str, Direction] = {
    "message.received": "inbound",
    "message.sent": "outbound",
    "message.finalized": "outbound",
}
# to[].status of an outbound message. delivery_unconfirmed is final but says nothing of the
# handset (no receipt came back from the carrier): sent. The raw status stays in attributes.
STATUSES: dict[str, EventType] = {
    "queued": "sending",
    "sending": "sending",
    "sent": "sent",
    "delivery_unconfirmed": "sent",
    "delivered": "delivered",
    "delivery_failed": "failed",
    "sending_failed": "failed",
    "expired": "failed",
}

PAYLOAD = "data.payload"
# Fields with a canonical home, or read entry by entry below (from, to, cc, media, errors, and
# meta); everything else lands in attributes under its path. data.event_type stays there: sent
# and finalized share event types.
CONSUMED = {
    "meta", "data.id", "data.occurred_at", "data.payload.id", "data.payload.type",
    "data.payload.direction", "data.payload.from", "data.payload.to", "data.payload.cc",
    "data.payload.text", "data.payload.subject", "data.payload.media",
    "data.payload.messaging_profile_id", "data.payload.parts", "data.payload.errors",
}  # fmt: skip
# How Telnyx copies a webhook (attempt number, the URL it was posted to) differs between
# retries of one event: kept apart from the event's content, under the per-delivery prefix.
DELIVERY = "delivery"

# The API's name for a medium's hash, then the one its docs' examples and outbound media use.
HASH_KEYS = ("hash_sha256", "sha256")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
MAX_SIZE = 2**63 - 1  # the Avro long


@dataclass(frozen=True, slots=True)
class Party:
    """One from / to[] / cc[] entry: its number and its other fields (carrier, status...)."""

    number: str | None
    status: str | None
    attributes: dict[str, str]


class Failure(NamedTuple):
    code: str | None
    description: str | None
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class Message:
    """What every record of one webhook shares."""

    event: str  # data.id
    direction: Direction
    sender: Party
    to: list[Party]
    cc: list[Party]
    errors: list[dict[str, Any]]
    record: MmsEvent  # the shared fields, replaced per record


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    message = _message(callback, ctx)
    if message.direction == "inbound":
        return [_received(message, ctx)]
    return _statuses(message, ctx)


def _message(callback: Callback, ctx: TranslateContext[Options]) -> Message:
    body = parse_json(callback.body, max_elements=ctx.limits.max_elements)
    if not isinstance(body, dict):
        raise Refusal("invalid_event", "expected a JSON object (the webhook's envelope)")
    data = _object(body.get("data"), "data")
    payload = _object(data.get("payload"), PAYLOAD)
    kind = expect_str(data.get("event_type"), "data.event_type", required=True)
    direction = DIRECTIONS.get(kind or "")
    if direction is None:
        raise Refusal("unknown_event_type", f"data.event_type {kind!r} is not a message event")
    _check_message(payload, direction)

    attributes = flatten_attributes(body, CONSUMED) | flatten_attributes(
        {DELIVERY: body.get("meta")}, set()
    )
    sender = _party(payload.get("from"), f"{PAYLOAD}.from")
    cc = _parties(payload.get("cc"), f"{PAYLOAD}.cc")
    attributes |= sender.attributes
    for party in cc:
        attributes |= party.attributes
    segments = segment_count(payload.get("parts"), attributes, f"{PAYLOAD}.parts")
    media = _media(payload.get("media"), attributes, ctx.limits.max_media)
    message_id = expect_str(payload.get("id"), f"{PAYLOAD}.id", required=True)
    record = MmsEvent(
        event_id="",  # per record, as are the owner, to, cc and an outbound event_type
        provider=NAME,
        event_type="received",
        direction=direction,
        owner="",
        received_at=callback.received_at,
        text=expect_str(payload.get("text"), f"{PAYLOAD}.text"),
        subject=expect_str(payload.get("subject"), f"{PAYLOAD}.subject"),
        media=media,
        provider_message_id=message_id,
        application_id=expect_str(
            payload.get("messaging_profile_id"), f"{PAYLOAD}.messaging_profile_id"
        ),
        occurred_at=optional_time(data.get("occurred_at"), "data.occurred_at"),
        segment_count=segments,
        attributes=attributes,
    )
    return Message(
        # required=True refuses a missing value, so this is a str.
        event=require_str(data.get("id"), "data.id"),
        direction=direction,
        sender=sender,
        to=_parties(payload.get("to"), f"{PAYLOAD}.to"),
        cc=cc,
        errors=_objects(payload.get("errors"), f"{PAYLOAD}.errors"),
        record=record,
    )


def _check_message(payload: dict[str, Any], direction: Direction) -> None:
    kind = expect_str(payload.get("type"), f"{PAYLOAD}.type", required=True)
    if kind != MMS:
        raise Refusal("not_mms", f"{PAYLOAD}.type {kind!r} is not an MMS")
    sent = expect_str(payload.get("direction"), f"{PAYLOAD}.direction")
    if sent is not None and sent != direction:
        raise Refusal("invalid_field", f"{PAYLOAD}.direction {sent!r} on a {direction} event")


def _received(message: Message, ctx: TranslateContext[Options]) -> MmsEvent:
    # Our number is the one Telnyx delivered to; a group MMS lists the other participants in
    # cc, and a copy naming no `to` can only be to one of them.
    numbers = [p.number for p in (*message.to, *message.cc) if p.number and p.number.strip()]
    parties = normalize_parties(
        numbers[0] if numbers else None,
        message.sender.number,
        _numbers(message.to),
        ctx.default_country,
        _numbers(message.cc),
        max_recipients=ctx.limits.max_recipients,
    )
    failure = _failure(message.errors, None)
    attributes = message.record.attributes | failure.attributes | parties.raw
    for party in message.to:
        attributes |= party.attributes
    return replace(
        message.record,
        event_id=event_id(NAME, message.event),
        owner=parties.owner,
        from_=parties.from_,
        to=parties.to,
        cc=parties.cc,
        error_code=failure.code,
        error_description=failure.description,
        attributes=attributes,
    )


def _statuses(message: Message, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    if not message.to:
        raise Refusal("missing_field", f"{PAYLOAD}.to names no recipient")
    if len(message.to) > ctx.limits.max_events:
        # One record per recipient: the recipients are the events.
        raise Refusal(
            "too_many_events",
            f"{len(message.to)} recipients, over the {ctx.limits.max_events}-event budget",
            status=413,
        )
    return [_status(message, i, ctx) for i in range(len(message.to))]


def _status(message: Message, index: int, ctx: TranslateContext[Options]) -> MmsEvent:
    recipient, where = message.to[index], f"{PAYLOAD}.to.{index}"
    number = recipient.number
    if number is None:
        raise Refusal("missing_field", f"{where}.phone_number is required")
    if recipient.status is None:
        raise Refusal("missing_field", f"{where}.status is required")
    event_type = STATUSES.get(recipient.status)
    if event_type is None:
        raise Refusal(
            "unknown_event_type", f"{where}.status {recipient.status!r} is not a message status"
        )
    parties = normalize_parties(
        message.sender.number,
        message.sender.number,
        [number],
        ctx.default_country,
        _numbers(message.cc),
        max_recipients=ctx.limits.max_recipients,
    )
    # A delivered recipient's record is not about an error of the message's.
    failure = _failure(message.errors, None if event_type == "delivered" else index)
    return replace(
        message.record,
        # data.id is one webhook; its recipients are told apart by number (repeats of one
        # number are the same recipient).
        event_id=event_id(NAME, message.event, number),
        event_type=event_type,
        owner=parties.owner,
        from_=parties.from_,
        to=parties.to,
        cc=parties.cc,
        error_code=failure.code,
        error_description=failure.description,
        attributes=message.record.attributes
        | recipient.attributes
        | failure.attributes
        | parties.raw,
    )


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        raise Refusal("missing_field", f"{field} is required")
    if not isinstance(value, dict):
        raise Refusal("invalid_event", f"{field}: expected an object")
    return value


def _objects(value: Any, field: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Refusal("invalid_field", f"{field}: expected a list of objects")
    return value


def _parties(value: Any, field: str) -> list[Party]:
    """to[] or cc[]; a single entry or a bare number (how 2019 webhooks sent `to`) is a list of
    one."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_party(item, f"{field}.{i}") for i, item in enumerate(items)]


def _party(value: Any, field: str) -> Party:
    if not isinstance(value, dict):
        return Party(expect_str(value, field), None, {})
    return Party(
        expect_str(value.get("phone_number"), f"{field}.phone_number"),
        expect_str(value.get("status"), f"{field}.status"),
        flatten_attributes(value, {f"{field}.phone_number"}, f"{field}."),
    )


def _numbers(parties: list[Party]) -> list[str]:
    return [p.number for p in parties if p.number is not None]


def _media(value: Any, attributes: dict[str, str], max_media: int) -> list[Media]:
    """The media entries with what Telnyx says of each (type, size, SHA-256: the mirror checks
    the download against them); what cannot be used stays in attributes."""
    field = f"{PAYLOAD}.media"
    entries = _objects(value, field)
    # Every entry keeps its index: an entry without a URL is one media_from_urls refuses.
    urls = [expect_str(e.get("url"), f"{field}.{i}.url") or "" for i, e in enumerate(entries)]
    found = iter(media_from_urls(urls, attributes, max_media, field))
    # The media come in the order of their URLs, less the refused ones (a refused URL is
    # refused wherever it appears): matched to their entries in one pass.
    medium = next(found, None)
    media = []
    for i, (entry, url) in enumerate(zip(entries, urls, strict=True)):
        prefix = f"{field}.{i}."
        consumed = {f"{prefix}url"}
        if medium is not None and medium.uri == url:
            described, used = _described(medium, entry)
            media.append(described)
            consumed |= {prefix + key for key in used}
            medium = next(found, None)
        attributes |= flatten_attributes(entry, consumed, prefix)
    return media


def _described(medium: Media, entry: dict[str, Any]) -> tuple[Media, set[str]]:
    """`medium` with the entry's content type, size and SHA-256 where usable, and the keys
    used; odd values are left for attributes."""
    content_type, size = entry.get("content_type"), entry.get("size")
    key = next((k for k in HASH_KEYS if entry.get(k) is not None), HASH_KEYS[0])
    digest: Any = entry.get(key)
    usable = {
        "content_type": isinstance(content_type, str) and bool(content_type),
        "size": isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_SIZE,
        key: isinstance(digest, str) and SHA256_HEX.fullmatch(digest) is not None,
    }
    described = replace(
        medium,
        content_type=content_type if usable["content_type"] else None,
        size=size if usable["size"] else None,
        sha256=digest.lower() if usable[key] else None,
    )
    return described, {name for name, ok in usable.items() if ok}


def _failure(errors: list[dict[str, Any]], recipient: int | None) -> Failure:
    """The error of a record (its code and title) and every error's other fields.

    Errors are the message's; one whose source.pointer names a to[] entry ("/to/1/phone_number")
    is that recipient's alone. `recipient` None: the record takes no recipient's error.
    """
    chosen = next(
        (k for k, error in enumerate(errors) if recipient is not None and _about(error, recipient)),
        None,
    )
    attributes: dict[str, str] = {}
    for k, error in enumerate(errors):
        prefix = f"{PAYLOAD}.errors.{k}."
        consumed = {f"{prefix}code", f"{prefix}title"} if k == chosen else set()
        attributes |= flatten_attributes(error, consumed, prefix)
    if chosen is None:
        return Failure(None, None, attributes)
    where = f"{PAYLOAD}.errors.{chosen}"
    error = errors[chosen]
    return Failure(
        expect_str(error.get("code"), f"{where}.code"),
        expect_str(error.get("title"), f"{where}.title"),
        attributes,
    )


def _about(error: dict[str, Any], recipient: int) -> bool:
    """Whether an error may be about to[recipient]: it names that entry, or no entry at all."""
    source = error.get("source")
    pointer = source.get("pointer") if isinstance(source, dict) else None
    if not isinstance(pointer, str) or not pointer.startswith("/to/"):
        return True
    return pointer.split("/")[2] == str(recipient)


SIGNATURE = Ed25519(header="telnyx-signature-ed25519", timestamp_header="telnyx-timestamp")

SAMPLE = Sample(
    b'{"data": {"event_type": "message.received", "id": "0b39187e-bbd3-438f-9c55-cf048e9a00c7",'
    b' "occurred_at": "2024-05-17T18:44:02.026+00:00", "record_type": "event", "payload": {'
    b'"id": "4c87f42a-6023-4aa6-84af-cc903469bdf9", "record_type": "message",'
    b' "direction": "inbound", "type": "MMS", "text": "Here is the photo from Saturday",'
    b' "from": {"phone_number": "+19197891146", "carrier": "Verizon Wireless",'
    b' "line_type": "Wireless"}, "to": [{"phone_number": "+19842550905", "carrier": "Telnyx",'
    b' "line_type": "Wireless", "status": "webhook_delivered"}], "cc": [],'
    b' "media": [{"url": "https://tlnx-mms-media.s3.amazonaws.com/mms/'
    b"ffaf3631da836e7d26ec56527f0c8e22/"
    b'6c8cb6ea44a91de858dae49802e1a528d1c77bdaa89af036c3139edbd442960a.jpeg",'
    b' "content_type": "image/jpeg", "size": 92084,'
    b' "hash_sha256": "6c8cb6ea44a91de858dae49802e1a528d1c77bdaa89af036c3139edbd442960a"}],'
    b' "messaging_profile_id": "4001742b-90be-405d-b1b5-40a434f0ffec", "parts": 1,'
    b' "encoding": "GSM-7", "received_at": "2024-05-17T18:44:01.866+00:00", "errors": []}},'
    b' "meta": {"attempt": 1, "delivered_to": "https://mms.example.com/callbacks/telnyx"}}',
    "application/json",
    "an inbound MMS with one picture (hosted by Telnyx on S3: the mirror fetches it)",
)
# Telnyx retries anything but a 2xx, six times over two URLs: a dead-lettered callback gets 200.
PROVIDER = Provider(NAME, translate, SAMPLE, dead_lettered=dead_lettered_200, signature=SIGNATURE)
