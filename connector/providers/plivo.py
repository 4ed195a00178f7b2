"""Plivo messaging callbacks: one form-encoded (application/x-www-form-urlencoded) POST per
event, every value a string, field names PascalCase and case-sensitive.

Two kinds, told apart by `Status`: an inbound message, posted to the Application's
message_url (MessageUUID, From, To = our number, Type, Body, MediaCount, Media<n>...), and a
message status callback, posted to the `url` given when sending (MessageUUID, From = our
sender, To, Status queued/sent/failed/delivered/undelivered/rejected/read, ErrorCode, empty
when there is none, Sequence, times...). Only MMS is translated: Type sms or whatsapp is
refused, as is an inbound message without Type (Plivo's default for it is sms); a status
callback may come without Type. Signed with X-Plivo-Signature-V3 (HMAC-SHA256 of the URL,
the sorted form and a nonce). Plivo waits 8 s and retries anything but a 2xx 3 times (60 s,
120 s, 240 s later; one support article says for 24 hours).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from connector.providers import signatures
from connector.providers.contract import (
    Callback,
    Limits,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
    empty_200,
)
from connector.providers.fields import (
    Parties,
    event_id,
    expect_str,
    media_from_urls,
    normalize_parties,
    our_number,
    parse_form,
    parse_unique_form,
    segment_count,
)
from connector.record import Direction, EventType, MmsEvent, flatten_attributes

NAME = "plivo"

MMS = "mms"
STATUSES: dict[str, EventType] = {
    "queued": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",  # WhatsApp's; read implies delivered (Status keeps which)
    "failed": "failed",  # before reaching a carrier
    "undelivered": "failed",  # the carrier's receipt says so
    "rejected": "failed",  # legacy docs only
}
# The docs number media from 1 (Media1...), a support article from 0 (Media0...): both are
# taken, every Media<digits> key in numeric order. ASCII digits only: \d would take "Media٣".
MEDIA_KEY = re.compile(r"Media[0-9]+")
# Fields with a canonical home; everything else (Type, Status, MediaCount, Sequence, costs,
# times, ParentMessageUUID...) lands in attributes. Media<n> and the text field are added.
CONSUMED = {"MessageUUID", "From", "To", "ErrorCode", "Units"}
# Longer than any segment count int() is worth calling on (Avro's int has 10 digits).
MAX_UNITS_DIGITS = 10

SIGNATURE_HEADER = "x-plivo-signature-v3"
NONCE_HEADER = "x-plivo-signature-v3-nonce"


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    form = _form(callback.body, ctx.limits)
    status = form.get("Status")
    direction: Direction = "inbound" if status is None else "outbound"
    _check_mms(form.get("Type"), direction)
    event_type = "received" if status is None else _event_type(status)
    message_id = expect_str(form.get("MessageUUID"), "MessageUUID", required=True)
    parties = _parties(form, direction, ctx)

    media_keys = _media_keys(form)
    # MMS text comes in Body; Text is SMS's, taken when Body is empty.
    text_key = "Body" if form.get("Body") else "Text"
    attributes = flatten_attributes(form, CONSUMED | {text_key, *media_keys}) | parties.raw
    urls = [form[key] for key in media_keys]
    media = media_from_urls(urls, attributes, ctx.limits.max_media, "Media<n>")
    # A retry is the same body; a status callback's Sequence orders a message's callbacks.
    identity = (message_id,) if status is None else (message_id, status, form.get("Sequence"))
    return [
        MmsEvent(
            event_id=event_id(NAME, *identity),
            provider=NAME,
            event_type=event_type,
            direction=direction,
            owner=parties.owner,
            received_at=callback.received_at,
            from_=parties.from_,
            to=parties.to,
            text=expect_str(form.get(text_key), text_key),
            media=media,
            provider_message_id=message_id,
            segment_count=_units(form.get("Units"), attributes),
            # Sent empty when there is no error.
            error_code=expect_str(form.get("ErrorCode"), "ErrorCode"),
            attributes=attributes,
        )
    ]


def _form(body: bytes, limits: Limits) -> dict[str, str]:
    return parse_unique_form(body, max_elements=limits.max_elements)


def _check_mms(raw_type: str | None, direction: Direction) -> None:
    """Refuse what is not an MMS: this is an MMS connector. A status callback may come
    without Type; an inbound message without it is an SMS (Plivo's default)."""
    if raw_type == MMS:
        return
    if raw_type:
        raise Refusal("not_mms", f"Type {raw_type!r} is not an MMS")
    if direction == "inbound":
        raise Refusal("not_mms", "no Status and no Type: an inbound message of Plivo's default sms")


def _event_type(status: str) -> EventType:
    event_type = STATUSES.get(status)
    if event_type is None:
        raise Refusal("unknown_event_type", f"Status {status!r} is not a message status")
    return event_type


def _parties(form: dict[str, str], direction: Direction, ctx: TranslateContext[Options]) -> Parties:
    """Our number is To on an inbound message (the Plivo number it was received on), From on
    a status callback (the sender id we sent from)."""
    ours = "From" if direction == "outbound" else "To"
    raw_from = expect_str(form.get("From"), "From", required=ours == "From")
    raw_to = expect_str(form.get("To"), "To", required=ours == "To")
    recipients = [] if raw_to is None else [raw_to]
    return normalize_parties(
        our_number(direction, raw_from, recipients),
        raw_from,
        recipients,
        ctx.default_country,
        max_recipients=ctx.limits.max_recipients,
    )


def _media_keys(form: Iterable[str]) -> list[str]:
    numbered = [key for key in form if MEDIA_KEY.fullmatch(key)]
    return sorted(numbered, key=_numeric_suffix)


def _numeric_suffix(key: str) -> tuple[int, str, int]:
    # Numeric order without int(), which refuses more than 4,300 digits: fewer significant
    # digits first, then the digits as text; "Media01" after "Media1".
    digits = key.removeprefix("Media")
    significant = digits.lstrip("0")
    return len(significant), significant, len(digits)


def _units(value: str | None, attributes: dict[str, str]) -> int | None:
    """Units (the number of parts) as the segment count; anything else stays an attribute."""
    if value is not None and value.isascii() and value.isdigit() and len(value) <= MAX_UNITS_DIGITS:
        return segment_count(int(value), attributes, "Units")
    return segment_count(value, attributes, "Units")


def signed_message(request: signatures.Signed) -> list[bytes]:
    """What Plivo's V3 signature covers (plivo-python utils/signature_v3.py, plivo-go
    ComputeSignatureV3): the URL Plivo posted to without its query, "?" and the query sorted
    as key=value pairs joined by "&", "." if there was a query, the body's parameters sorted as
    key + value with nothing between, then "." and the nonce. Values are the decoded ones."""
    url = urlsplit(request.url)
    base = f"{url.scheme}://{url.netloc}{url.path}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(url.query, keep_blank_values=True)))
    params = "".join(
        k + v for k, v in sorted(parse_form(request.body, max_elements=request.max_elements))
    )
    if params:
        # The "?" even without a query: Plivo's rule for a POST with parameters.
        base += f"?{query}{'.' if query else ''}{params}"
    elif query:
        base += f"?{query}"
    return [f"{base}.{request.headers.get(NONCE_HEADER, '')}".encode()]


SAMPLE = Sample(
    b"From=14155550123&To=14155550100&Type=mms&Body=Here+is+the+photo+from+Saturday"
    b"&MessageUUID=0936ec98-7c4c-11ef-a4b2-0242ac110003&Units=1&TotalRate=0.0055"
    b"&TotalAmount=0.0055&PowerpackUUID=&MediaCount=1"
    b"&Media1=https%3A%2F%2Fmedia.plivo.com%2FAccount%2FMAODZKMDFJMJU3MTEYNG%2FMedia"
    b"%2F91f8f9ce-e236-474f-a2b8-f75d9c35988a",
    "application/x-www-form-urlencoded",
    "an inbound MMS with one picture (hosted by Plivo: the mirror fetches it)",
)
SIGNATURE = signatures.Hmac(
    header=SIGNATURE_HEADER,
    signed=signed_message,
    digest="sha256",
    encoding="base64",
    separator=",",
    nonce_header=NONCE_HEADER,
    # The same message signed with the main account's token (for a subaccount's number).
    more_headers=("x-plivo-signature-ma-v3",),
)
# Any 2xx stops Plivo's retries; a reply body to an inbound message would be read as Plivo XML
# (a message to send back), so the body is empty.
PROVIDER = Provider(
    NAME, translate, SAMPLE, accepted=empty_200, dead_lettered=empty_200, signature=SIGNATURE
)
