"""Bandwidth v1 ("Catapult") callbacks: one JSON object per event, eventType "mms".

`state` is received (inbound) or queued, sending, sent, error (outbound); `deliveryState`
(waiting, delivered, not-delivered) with `deliveryCode` (0 delivered to carrier, 7xx destination
problems, 999 unknown) and `deliveryDescription` arrive with some outbound events. The docs say
`time` is when the message resource was created, so the outbound events of one message may all
carry the same time.
"""

from __future__ import annotations

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
from connector.record import Direction, EventType, MmsEvent, flatten_attributes

NAME = "bandwidth-v1"

OUTBOUND_STATES: dict[str, EventType] = {
    "queued": "sending",
    "sending": "sending",
    "sent": "sent",
    "error": "failed",
}
# A final delivery state outranks `state`, which can still say "sent".
DELIVERY_STATES: dict[str, EventType] = {"delivered": "delivered", "not-delivered": "failed"}

# Fields with a canonical home; everything else lands in attributes. `state` and
# `deliveryState` stay there too: several of their values map to one event_type.
CONSUMED = {
    "eventType", "direction", "from", "to", "messageId", "text", "applicationId", "time",
    "media", "segmentCount", "tag",
}  # fmt: skip
ERROR_FIELDS = {"deliveryCode", "deliveryDescription"}


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    data = parse_json(callback.body, max_elements=ctx.limits.max_elements)
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected one JSON object per event")

    raw_type = expect_str(data.get("eventType"), "eventType", required=True)
    if raw_type != "mms":
        raise Refusal("unknown_event_type", f"eventType {raw_type!r} is not an MMS event")
    raw_direction = expect_str(data.get("direction"), "direction", required=True)
    direction = IN_OUT.get(raw_direction or "")
    if direction is None:
        raise Refusal("invalid_field", f"direction {raw_direction!r} is neither 'in' nor 'out'")
    state = expect_str(data.get("state"), "state")
    delivery_state = expect_str(data.get("deliveryState"), "deliveryState")
    event_type = _event_type(direction, state, delivery_state)

    message_id = expect_str(data.get("messageId"), "messageId", required=True)
    raw_from = expect_str(data.get("from"), "from")
    raw_to = expect_str_list(data.get("to"), "to")
    raw_owner = our_number(direction, raw_from, raw_to)
    if raw_owner is None:
        owner_field = "from" if direction == "outbound" else "to"
        raise Refusal("missing_field", f"{owner_field} is required on {raw_direction!r} events")
    parties = normalize_parties(
        raw_owner, raw_from, raw_to, ctx.default_country, max_recipients=ctx.limits.max_recipients
    )

    time = data.get("time")
    code = expect_str(data.get("deliveryCode"), "deliveryCode")
    description = expect_str(data.get("deliveryDescription"), "deliveryDescription")
    # A non-zero code is worth surfacing even on a delivered event (999: unknown outcome).
    has_error = event_type == "failed" or (code is not None and not _is_zero(code))
    attributes = flatten_attributes(data, CONSUMED | (ERROR_FIELDS if has_error else set()))
    attributes |= parties.raw

    segments = segment_count(data.get("segmentCount"), attributes, "segmentCount")
    urls = expect_str_list(data.get("media"), "media")
    media = media_from_urls(urls, attributes, ctx.limits.max_media, "media")
    return [
        MmsEvent(
            event_id=event_id(NAME, message_id, state, delivery_state, time),
            provider=NAME,
            event_type=event_type,
            direction=direction,
            owner=parties.owner,
            received_at=callback.received_at,
            from_=parties.from_,
            to=parties.to,
            text=expect_str(data.get("text"), "text"),
            media=media,
            provider_message_id=message_id,
            application_id=expect_str(data.get("applicationId"), "applicationId"),
            tag=expect_str(data.get("tag"), "tag"),
            occurred_at=optional_time(time, "time"),
            segment_count=segments,
            error_code=code if has_error else None,
            error_description=description if has_error else None,
            attributes=attributes,
        )
    ]


def _event_type(direction: Direction, state: str | None, delivery_state: str | None) -> EventType:
    if direction == "inbound":
        # "received" is the only inbound state; a missing state still means a message arrived.
        if state not in (None, "received"):
            raise Refusal("unknown_event_type", f"state {state!r} is not an inbound MMS state")
        return "received"
    event_type = DELIVERY_STATES.get(delivery_state or "") or OUTBOUND_STATES.get(state or "")
    if event_type is None:
        raise Refusal(
            "unknown_event_type",
            f"state {state!r} / deliveryState {delivery_state!r} is not an outbound MMS state",
        )
    return event_type


def _is_zero(code: str) -> bool:
    # Compared as text: int() on an arbitrary string could raise (or be slow) on hostile input.
    digits = code.strip()
    return bool(digits) and not digits.strip("0")


SAMPLE = Sample(
    b'{"eventType": "mms", "direction": "in", "state": "received",'
    b' "messageId": "m-dr4mcch2wfb6frcls677glq", "from": "+15035555555",'
    b' "to": "+12534483100", "time": "2015-08-04T21:50:12Z", "text": "Hello MMS!",'
    b' "applicationId": "a-rj7jf3fz7teaqupveqpug3i", "segmentCount": 1,'
    b' "media": ["https://api.catapult.inetwork.com/v1/users/u-2oulzbvr6uwoy3hp4gfyz3a/media/'
    b'm-dr4mcch2wfb6frcls677glq-1.jpg"]}',
    "application/json",
    "an inbound MMS with one picture",
)
PROVIDER = Provider(NAME, translate, SAMPLE)
