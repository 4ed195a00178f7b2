"""Bandwidth Messaging API v2 callbacks: a JSON array of message events.

Types: message-received (inbound), message-sending, message-delivered, message-failed
(outbound). `message.owner` is our number for this copy of the message (for group messages it
need not be to[0]). Bandwidth retries anything but a 2xx for up to 24 hours.
"""

from __future__ import annotations

from typing import Any

from connector.providers.contract import (
    Callback,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
)
from connector.providers.fields import (
    IN_OUT,
    event_id,
    expect_str,
    expect_str_list,
    media_from_urls,
    normalize_parties,
    optional_time,
    our_number,
    parse_json,
    segment_count,
)
from connector.record import EventType, MmsEvent, flatten_attributes

NAME = "bandwidth-v2"

EVENT_TYPES: dict[str, EventType] = {
    "message-received": "received",
    "message-sending": "sending",
    "message-delivered": "delivered",
    "message-failed": "failed",
}

# Fields with a canonical home; everything else lands in attributes.
CONSUMED = {
    "type", "time", "errorCode", "message.id", "message.owner", "message.direction",
    "message.from", "message.to", "message.text", "message.media", "message.applicationId",
    "message.tag", "message.segmentCount",
}  # fmt: skip


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    data = parse_json(callback.body, max_elements=ctx.limits.max_elements)
    events = data if isinstance(data, list) else [data]
    if not events:
        raise Refusal("no_events", "the callback holds an empty list of events")
    if len(events) > ctx.limits.max_events:
        # 85,000 events in one callback took 3.4 s and made 85,000 records.
        raise Refusal(
            "too_many_events",
            f"{len(events)} events, over the {ctx.limits.max_events} budget",
            status=413,
        )
    return [_event(item, i, callback, ctx) for i, item in enumerate(events)]


def _event(item: Any, index: int, callback: Callback, ctx: TranslateContext[Options]) -> MmsEvent:
    where = f"events[{index}]"
    if not isinstance(item, dict):
        raise Refusal("invalid_event", f"{where}: expected an object")
    message = item.get("message")
    if not isinstance(message, dict):
        raise Refusal("missing_field", f"{where}.message is required")

    raw_type = expect_str(item.get("type"), f"{where}.type", required=True)
    event_type = EVENT_TYPES.get(raw_type or "")
    if event_type is None:
        raise Refusal("unknown_event_type", f"{where}.type {raw_type!r} is not a message event")
    raw_direction = expect_str(message.get("direction"), f"{where}.message.direction")
    direction = IN_OUT.get(raw_direction or "") or (
        "inbound" if event_type == "received" else "outbound"
    )

    message_id = expect_str(message.get("id"), f"{where}.message.id", required=True)
    raw_from = expect_str(message.get("from"), f"{where}.message.from")
    raw_to = expect_str_list(message.get("to"), f"{where}.message.to")
    raw_owner = expect_str(message.get("owner"), f"{where}.message.owner")
    if raw_owner is None:
        # Documented rule when owner is absent: outbound from our number, inbound to it.
        raw_owner = our_number(direction, raw_from, raw_to)
    if raw_owner is None or not raw_owner.strip():
        raise Refusal("missing_field", f"{where}.message.owner is required")

    parties = normalize_parties(
        raw_owner, raw_from, raw_to, ctx.default_country, max_recipients=ctx.limits.max_recipients
    )
    time = item.get("time")
    failed = event_type == "failed"
    attributes = flatten_attributes(item, CONSUMED | ({"description"} if failed else set()))
    attributes |= parties.raw
    segments = segment_count(message.get("segmentCount"), attributes, "message.segmentCount")
    urls = expect_str_list(message.get("media"), f"{where}.message.media")
    media = media_from_urls(urls, attributes, ctx.limits.max_media, f"{where}.message.media")
    return MmsEvent(
        event_id=event_id(NAME, message_id, raw_owner, raw_type, time),
        provider=NAME,
        event_type=event_type,
        direction=direction,
        owner=parties.owner,
        received_at=callback.received_at,
        from_=parties.from_,
        to=parties.to,
        text=expect_str(message.get("text"), f"{where}.message.text"),
        media=media,
        provider_message_id=message_id,
        application_id=expect_str(message.get("applicationId"), f"{where}.message.applicationId"),
        tag=expect_str(message.get("tag"), f"{where}.message.tag"),
        occurred_at=optional_time(time, f"{where}.time"),
        segment_count=segments,
        error_code=expect_str(item.get("errorCode"), f"{where}.errorCode"),
        error_description=expect_str(item.get("description"), f"{where}.description")
        if failed
        else None,
        attributes=attributes,
    )


SAMPLE = Sample(
    b'[{"type": "message-received", "time": "2024-03-14T15:09:26.535Z",'
    b' "description": "Incoming message received", "to": "+19195554321",'
    b' "message": {"id": "1710428966534ia3vkyfcpd4bf7sk", "owner": "+19195554321",'
    b' "applicationId": "93de2206-9669-4e07-948d-329f4b722ee2", "segmentCount": 1,'
    b' "direction": "in", "to": ["+19195554321"], "from": "+17045551234",'
    b' "text": "Here is the photo from Saturday",'
    b' "media": ["https://messaging.bandwidth.com/api/v2/users/5559876/media/'
    b'14762070468292kw2fuqty55yp2b2/0/IMG_4021.jpg"]}}]',
    "application/json",
    "an inbound MMS with one picture (hosted by Bandwidth: the mirror fetches it)",
)
PROVIDER = Provider(NAME, translate, SAMPLE)
