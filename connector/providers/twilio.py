"""Twilio Programmable Messaging webhooks: one message event per form-encoded POST.

Two kinds arrive. An incoming message, posted to the number's (or Messaging Service's) "A
message comes in" URL: SMS and MMS alike (one URL takes both; an MMS is one with media), with
`Body`, `NumMedia` and `MediaUrl<N>` / `MediaContentType<N>` for N below it, and no timestamp.
An outbound message's status callback: `MessageStatus` (queued, sent, delivered, undelivered,
failed, read, canceled...), `ErrorCode` on failures, no text and no media. Other channels'
messages (`whatsapp:+1...` addresses) are refused. Twilio signs both kinds with
X-Twilio-Signature and wants TwiML back. It retries an HTTP error only when the URL's
connection-override fragment asks for it (`#rc=<count>&rp=4xx|5xx|all`, 15 s in all), and calls
the Fallback URL, if one is set, whenever the primary fails.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qs, urlsplit, urlunsplit

from connector.providers.contract import (
    Callback,
    Limits,
    Options,
    Provider,
    Refusal,
    Reply,
    Sample,
    TranslateContext,
)
from connector.providers.fields import (
    event_id,
    expect_str,
    media_from_urls,
    media_type,
    normalize_parties,
    our_number,
    parse_form,
    parse_unique_form,
    segment_count,
)
from connector.providers.signatures import Hmac, Signed, url_variants
from connector.record import Direction, EventType, Media, MmsEvent, flatten_attributes

NAME = "twilio"

# MessageStatus (SmsStatus, its deprecated twin, where it is absent) to the event type. An
# incoming message carries no MessageStatus, only SmsStatus=received (or, one day, neither).
RECEIVED = "received"
EVENT_TYPES: dict[str, EventType] = {
    RECEIVED: "received",
    # The initial states (Messaging Service or not), then handing it to the carrier.
    "accepted": "sending",
    "scheduled": "sending",
    "queued": "sending",
    "sending": "sending",
    "sent": "sent",
    # Undocumented beyond its name: delivery is not confirmed for the whole message.
    "partially_delivered": "sent",
    "delivered": "delivered",
    "read": "delivered",  # a read receipt (documented for WhatsApp, RCS) follows delivery
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",  # a scheduled message, canceled before it was sent
}

# Fields with a canonical home (and the media fields of the media sent); everything else,
# MessageStatus and SmsStatus included (several statuses map to one event_type), lands in
# attributes.
CONSUMED = {
    "MessageSid", "From", "To", "Body", "MessagingServiceSid", "NumSegments", "ErrorCode",
    "ErrorMessage",
}  # fmt: skip
MEDIA_FIELDS = ("MediaUrl", "MediaContentType")
MEDIA_URL = re.compile(r"MediaUrl[0-9]+")
# A channel's address: its name, then a colon (numbers, short codes and sender ids have none).
CHANNEL_ADDRESS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# NumMedia and NumSegments as Twilio writes them; nine digits are past any budget already.
COUNT = re.compile(r"[0-9]{1,9}")

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    form = _form(callback, ctx.limits)
    message_id = expect_str(form.get("MessageSid"), "MessageSid", required=True)
    raw_status = form.get("MessageStatus", form.get("SmsStatus", RECEIVED))
    event_type = EVENT_TYPES.get(raw_status)
    if event_type is None:
        raise Refusal("unknown_event_type", f"MessageStatus {raw_status!r} is no message status")
    direction: Direction = "inbound" if event_type == "received" else "outbound"
    media_count = _media_count(form, ctx.limits.max_media)

    raw_from = _address(form, "From")
    raw_to = [to] if (to := _address(form, "To")) else []
    parties = normalize_parties(
        our_number(direction, raw_from, raw_to), raw_from, raw_to, ctx.default_country,
        max_recipients=ctx.limits.max_recipients,
    )  # fmt: skip
    media_fields = {f"{kind}{i}" for kind in MEDIA_FIELDS for i in range(media_count)}
    attributes = flatten_attributes(form, CONSUMED | media_fields) | parties.raw
    media = _media(form, media_count, attributes, ctx.limits.max_media)
    segments = segment_count(_count(form.get("NumSegments")), attributes, "NumSegments")
    return [
        MmsEvent(
            # Retries repeat the body; one message's callbacks differ in their status.
            event_id=event_id(NAME, message_id, raw_status, form.get("RawDlrDoneDate")),
            provider=NAME,
            event_type=event_type,
            direction=direction,
            owner=parties.owner,
            received_at=callback.received_at,
            from_=parties.from_,
            to=parties.to,
            text=expect_str(form.get("Body"), "Body"),
            media=media,
            provider_message_id=message_id,
            application_id=expect_str(form.get("MessagingServiceSid"), "MessagingServiceSid"),
            segment_count=segments,
            error_code=expect_str(form.get("ErrorCode"), "ErrorCode"),
            error_description=expect_str(form.get("ErrorMessage"), "ErrorMessage"),
            attributes=attributes,
        )
    ]


def _form(callback: Callback, limits: Limits) -> dict[str, str]:
    """The form's fields by name; each may be sent once (Twilio never repeats one)."""
    if _is_json(callback.content_type or callback.headers.get("content-type", "")):
        # Twilio signs JSON bodies (bodySHA256), but documents none for messaging webhooks.
        raise Refusal(
            "unsupported_media_type", "a JSON body: Twilio's messaging webhooks are forms", 415
        )
    return parse_unique_form(callback.body, max_elements=limits.max_elements)


def _address(form: dict[str, str], field: str) -> str | None:
    """A number, short code or sender id; a channel's address (`whatsapp:+1...`, `rcs:...`) is
    another product's message: refused, this is an SMS/MMS connector."""
    address = expect_str(form.get(field), field)
    if address is not None and (channel := CHANNEL_ADDRESS.match(address)):
        raise Refusal(
            "unsupported_channel",
            f"{field} is a {channel[1]} address: this connector takes SMS/MMS",
        )
    return address


def _is_json(content_type: str) -> bool:
    kind = media_type(content_type)
    return kind == "application/json" or kind.endswith("+json")


def _count(value: str | None) -> int | str | None:
    """A count as Twilio writes it, as an int; anything else as sent."""
    return int(value) if value is not None and COUNT.fullmatch(value) else value


def _media_count(form: dict[str, str], max_media: int) -> int:
    """NumMedia (none on status callbacks), within the budget and matching the MediaUrl<N> sent:
    a media URL missing, or one more than announced, is refused rather than guessed around."""
    sent = sorted(name for name in form if MEDIA_URL.fullmatch(name))
    count = _count(form.get("NumMedia", "0"))
    if not isinstance(count, int):
        raise Refusal("invalid_field", f"NumMedia: expected a count, got {count!r}")
    if max(count, len(sent)) > max_media:
        raise Refusal(
            "too_many_media", f"{max(count, len(sent))} media, over the {max_media} budget", 413
        )
    if sent != sorted(f"MediaUrl{i}" for i in range(count)):
        raise Refusal("media_count_mismatch", f"NumMedia is {count}, the media URLs sent {sent}")
    return count


def _media(
    form: dict[str, str], count: int, attributes: dict[str, str], max_media: int
) -> list[Media]:
    """MediaUrl<N> as media (status `provider`: Twilio hosts them), with MediaContentType<N>."""
    urls = [form[f"MediaUrl{i}"] for i in range(count)]
    types = [form.get(f"MediaContentType{i}") or None for i in range(count)]
    return media_from_urls(urls, attributes, max_media, "MediaUrl", types)


# --- the signature -----------------------------------------------------------------------------


def _signed(request: Signed) -> list[bytes]:
    """What Twilio signs (twilio-python's RequestValidator): the URL it posted to, then every
    form parameter sorted by name and value, as name + value; for a JSON body the URL alone,
    which binds the body by its bodySHA256 query parameter."""
    if _is_json(request.headers.get("content-type", "")):
        _check_body_hash(request)
        params = ""
    else:
        form = parse_form(request.body, max_elements=request.max_elements)
        params = "".join(name + value for name, value in sorted(set(form)))
    return [(url + params).encode() for url in _urls(request.url)]


def _check_body_hash(request: Signed) -> None:
    sent = parse_qs(urlsplit(request.url).query).get("bodySHA256", [""])[0]
    body_hash = hashlib.sha256(request.body).hexdigest()
    if not hmac.compare_digest(body_hash.encode(), sent.encode()):
        raise Refusal("signature_invalid", "the body's SHA-256 is not the URL's bodySHA256", 403)


def _urls(url: str) -> list[str]:
    """The URL with and without its scheme's default port and, as twilio-python also tries, with
    no port at all: Twilio's back end "is inconsistent" in which it signs."""
    variants = url_variants(url)
    parts = urlsplit(url)
    if parts.port is None:
        return variants
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition(":")[0]))
    return variants if bare in variants else [*variants, bare]


SIGNATURE = Hmac(header="x-twilio-signature", signed=_signed, digest="sha1", encoding="base64")


# --- replies -----------------------------------------------------------------------------------


def empty_twiml(_outcome: object) -> Reply:
    """200 with TwiML that does nothing: no reply message is sent (a `<Message>` would be).

    For accepted callbacks, and for untranslatable ones once they are safe in the dead-letter
    topic: a non-2xx would send Twilio to the Fallback URL, and retry where the URL's
    connection overrides say `rp=4xx` or `all`, for a callback already kept.
    """
    return Reply(200, EMPTY_TWIML, "text/xml")


SAMPLE = Sample(
    b"ToCountry=US&MediaContentType0=image%2Fjpeg&ToState=NC&SmsMessageSid="
    b"MM4f2b9e0c7d1a3856e9b0c4d7a2f16e83&NumMedia=1&ToCity=RALEIGH&FromZip=28202&SmsSid="
    b"MM4f2b9e0c7d1a3856e9b0c4d7a2f16e83&FromState=NC&SmsStatus=received&FromCity=CHARLOTTE"
    b"&Body=Here+is+the+photo+from+Saturday&FromCountry=US&To=%2B19195554321&ToZip=27601"
    b"&NumSegments=1&MessageSid=MM4f2b9e0c7d1a3856e9b0c4d7a2f16e83"
    b"&AccountSid=AC8d3e6b1f04c2a79e5b0d8c13f6a2e947&From=%2B17045551234"
    b"&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2F"
    b"AC8d3e6b1f04c2a79e5b0d8c13f6a2e947%2FMessages%2FMM4f2b9e0c7d1a3856e9b0c4d7a2f16e83"
    b"%2FMedia%2FME0b7c2e94f6d1a3b58e2c9f0d4a7b6e13&ApiVersion=2010-04-01",
    "application/x-www-form-urlencoded",
    "an incoming MMS with one picture (hosted by Twilio: the mirror fetches it)",
)
PROVIDER = Provider(
    NAME,
    translate,
    SAMPLE,
    accepted=empty_twiml,
    dead_lettered=empty_twiml,
    signature=SIGNATURE,
)
