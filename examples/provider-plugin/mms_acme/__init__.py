"""Acme Messaging, a fictional provider: the example of a provider that installs as a plugin.

Acme posts one JSON object per event: `{"type": "mo" | "status", "id", "from", "to", "text",
"media": [{"url", "content_type"}], "status", "error", "time"}`, signed with an HMAC-SHA256
(hex) of `<timestamp>.<body>` in `X-Acme-Signature`, the timestamp in `X-Acme-Timestamp`.
It retries 5xx only.

A plugin declares a `Provider` exactly as the built-in ones do (connector/providers/): it may
use the shared helpers (fields, signatures) and nothing else of the connector.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from connector.providers.contract import (
    Callback,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
)
from connector.providers.fields import (
    event_id,
    expect_str,
    media_from_urls,
    normalize_parties,
    optional_time,
    parse_json,
    require_str,
)
from connector.providers.signatures import Hmac, Signed
from connector.record import EventType, Media, MmsEvent, flatten_attributes

NAME = "acme"
STATUSES: dict[str, EventType] = {"sent": "sent", "delivered": "delivered", "failed": "failed"}
CONSUMED = {"type", "id", "from", "to", "text", "media", "status", "error", "time"}


class AcmeOptions(Options):
    """Acme's own config keys (`providers.acme.<key>`)."""

    # Acme sends a subject line in `text` before a blank line when this is on.
    subject_in_text: bool = False
    max_subject_chars: int = Field(200, gt=0)


def translate(callback: Callback, ctx: TranslateContext[AcmeOptions]) -> list[MmsEvent]:
    data = parse_json(callback.body, max_elements=ctx.limits.max_elements)
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected one JSON object")
    kind = require_str(data.get("type"), "type")
    if kind == "mo":
        event_type: EventType = "received"
    elif kind == "status":
        status = require_str(data.get("status"), "status")
        if status not in STATUSES:
            raise Refusal("unknown_status", f"status {status!r} is not one Acme documents")
        event_type = STATUSES[status]
    else:
        raise Refusal("unknown_event_type", f"type {kind!r} is neither mo nor status")
    message_id = require_str(data.get("id"), "id")
    raw_from = require_str(data.get("from"), "from")
    raw_to = require_str(data.get("to"), "to")
    inbound = event_type == "received"
    owner = raw_to if inbound else raw_from
    parties = normalize_parties(
        owner, raw_from, [raw_to], ctx.default_country, max_recipients=ctx.limits.max_recipients
    )
    text = expect_str(data.get("text"), "text")
    subject = None
    if text and ctx.options.subject_in_text and "\n\n" in text:
        subject, text = text.split("\n\n", 1)
        subject = subject[: ctx.options.max_subject_chars]
    attributes = flatten_attributes(data, CONSUMED) | parties.raw
    media = _media(data.get("media"), attributes, ctx.limits.max_media)
    return [
        MmsEvent(
            event_id=event_id(NAME, message_id, kind, data.get("status"), data.get("time")),
            provider=NAME,
            event_type=event_type,
            direction="inbound" if inbound else "outbound",
            owner=parties.owner,
            received_at=callback.received_at,
            from_=parties.from_,
            to=parties.to,
            text=text,
            subject=subject,
            media=media,
            provider_message_id=message_id,
            occurred_at=optional_time(data.get("time"), "time"),
            error_description=expect_str(data.get("error"), "error"),
            attributes=attributes,
        )
    ]


def _media(value: Any, attributes: dict[str, str], budget: int) -> list[Media]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise Refusal("invalid_field", "media must be a list of objects")
    urls = [require_str(m.get("url"), f"media[{i}].url") for i, m in enumerate(value)]
    types = [
        expect_str(m.get("content_type"), f"media[{i}].content_type") for i, m in enumerate(value)
    ]
    # Only http(s) URLs, safe file names, the budget: the shared rules every provider keeps.
    return media_from_urls(urls, attributes, budget, "media", types)


def _signed(request: Signed) -> list[bytes]:
    return [request.headers.get("x-acme-timestamp", "").encode() + b"." + request.body]


SAMPLE = Sample(
    b'{"type": "mo", "id": "acme-1", "from": "+14155550100", "to": "+14155550199",'
    b' "text": "Look at this", "time": "2026-01-01T12:00:00Z",'
    b' "media": [{"url": "https://media.acme.example/m/1.jpg", "content_type": "image/jpeg"}]}',
    "application/json",
    "an inbound MMS with one picture",
)
PROVIDER = Provider(
    NAME,
    translate,
    SAMPLE,
    AcmeOptions,
    signature=Hmac(
        "x-acme-signature",
        _signed,
        encoding="hex",
        signs_url=False,
        timestamp_header="x-acme-timestamp",
    ),
)
