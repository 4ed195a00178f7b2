"""OpenMarket MMS callbacks: MO messages (multipart/mixed) and delivery reports (JSON).

An MO is multipart/mixed: a JSON part (type MO, Content-Id main) first, then the message's
parts, which OpenMarket documents as base64. A delivery report (type REPORT) is a plain JSON POST
about an MT we sent and names no phone number. OpenMarket wants 200 with an empty body within
10 s and retries anything else, so duplicates happen: event ids come from the provider's ids.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from connector.providers.contract import (
    Callback,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
    empty_200,
    media_store_failed,
)
from connector.providers.fields import (
    event_id,
    expect_str,
    expect_str_list,
    normalize_parties,
    optional_time,
    parse_json,
    safe_filename,
)
from connector.providers.openmarket.mime import (
    Part,
    extended_filename,
    options,
    read_parts,
    text_of,
)
from connector.providers.openmarket.options import PartLimits
from connector.record import EventType, Media, MmsEvent, flatten_attributes

NAME = "openmarket"

# Fields with a canonical home; everything else lands in attributes.
MO_CONSUMED = {"type", "moId", "source", "destinations", "ccs", "bccs", "date", "subject"}
# `status` is mapped to event_type but also kept as sent, so it is not consumed.
REPORT_CONSUMED = {"type", "mtId", "date"}
# Only a failure has an error; on other reports the outcome stays in attributes.
FAILURE_CONSUMED = {"outcomeId", "outcomeDescription"}

# Report statuses (MM7 vocabulary, compared case-insensitively). Anything else, including the
# non-final Forwarded/Deferred/Indeterminate, is "sent": the MT left us and is not known to be
# delivered or failed; the raw status stays in attributes["status"].
REPORT_EVENT_TYPES: dict[str, EventType] = {
    "delivered": "delivered",
    "retrieved": "delivered",
    "rejected": "failed",
    "failed": "failed",
    "expired": "failed",
    "undeliverable": "failed",
    "unrecognized": "failed",
    "unreachable": "failed",
    "notsupported": "failed",
}

# The X-Request-Id header, namespaced apart from the JSON fields (camelCase) and raw.* numbers.
REQUEST_ID_ATTRIBUTE = "header.x-request-id"

JSON_MEDIA_TYPES = {"application/json", "text/json"}


def translate(callback: Callback, ctx: TranslateContext[PartLimits]) -> list[MmsEvent]:
    media_type, params = options(callback.content_type or callback.headers.get("content-type", ""))
    if media_type.startswith("multipart/"):
        return [_mo(callback, params.get("boundary", ""), ctx)]
    # Reports come as application/json; anything not multipart is read as JSON and refused as
    # invalid_json if it is not.
    data = _object(parse_json(callback.body, max_elements=ctx.limits.max_elements))
    kind = _kind(data)
    if kind == "REPORT":
        return [_report(data, callback)]
    if kind == "MO":
        raise Refusal("not_multipart", "an MO must come as multipart/mixed with its parts")
    raise Refusal("unknown_type", f"type {kind!r} is neither MO nor REPORT")


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected a JSON object")
    return data


def _kind(data: dict[str, Any]) -> str:
    return (expect_str(data.get("type"), "type", required=True) or "").upper()


def _mo(callback: Callback, boundary: str, ctx: TranslateContext[PartLimits]) -> MmsEvent:
    if not boundary:
        raise Refusal("missing_boundary", "multipart Content-Type without a boundary")
    details, *contents = read_parts(callback.body, boundary.encode("latin-1"), ctx.options)
    if details.media_type not in JSON_MEDIA_TYPES and _content_id(details) != "main":
        raise Refusal("missing_json_part", "the first part must be the JSON details")
    data = _object(parse_json(details.content, max_elements=ctx.limits.max_elements))
    kind = _kind(data)
    if kind != "MO":
        raise Refusal("unknown_type", f"a multipart callback must be an MO, not {kind!r}")

    mo_id = expect_str(data.get("moId"), "moId", required=True)
    raw_from = expect_str(data.get("source"), "source", required=True) or ""
    raw_to = expect_str_list(data.get("destinations"), "destinations")
    # The first destination is the Kafka key: blank will not do.
    if not raw_to or not raw_to[0].strip() or not raw_from.strip():
        raise Refusal("missing_field", "source and destinations are required")
    raw_cc = expect_str_list(data.get("ccs"), "ccs")
    raw_bcc = expect_str_list(data.get("bccs"), "bccs")
    subject = expect_str(data.get("subject"), "subject")
    occurred_at = optional_time(data.get("date"), "date")

    parties = normalize_parties(
        raw_to[0],
        raw_from,
        raw_to,
        ctx.default_country,
        raw_cc,
        raw_bcc,
        max_recipients=ctx.limits.max_recipients,
    )
    attributes = flatten_attributes(data, MO_CONSUMED) | parties.raw
    _add_request_id(attributes, callback)

    # text/plain parts are the message text; they are not stored again as media.
    texts = [text_of(p.content, p.params.get("charset")) for p in contents if _is_text(p)]
    inline = [p for p in contents if not _is_text(p)]
    if len(inline) > ctx.limits.max_media:
        raise Refusal(
            "too_many_media", f"{len(inline)} media, over the {ctx.limits.max_media} budget", 413
        )
    # Stored last, so a refused callback leaves no files behind.
    media = [_store(p, i, attributes, ctx) for i, p in enumerate(inline)]
    return MmsEvent(
        # moId is OpenMarket's id of this MO: a retry carries the same one.
        event_id=event_id(NAME, "MO", mo_id),
        provider=NAME,
        event_type="received",
        direction="inbound",
        # OpenMarket sends one destination: our short code or number.
        owner=parties.owner,
        received_at=callback.received_at,
        from_=parties.from_,
        to=parties.to,
        cc=parties.cc,
        bcc=parties.bcc,
        text="\n".join(texts) if texts else None,
        subject=subject,
        media=media,
        provider_message_id=mo_id,
        occurred_at=occurred_at,
        attributes=attributes,
    )


def _report(data: dict[str, Any], callback: Callback) -> MmsEvent:
    mt_id = expect_str(data.get("mtId"), "mtId", required=True) or ""
    if not mt_id.strip():  # it becomes the Kafka key
        raise Refusal("missing_field", "mtId is required")
    status = expect_str(data.get("status"), "status", required=True) or ""
    event_type = REPORT_EVENT_TYPES.get(status.strip().lower(), "sent")
    failed = event_type == "failed"
    date = data.get("date")
    attributes = flatten_attributes(data, REPORT_CONSUMED | (FAILURE_CONSUMED if failed else set()))
    _add_request_id(attributes, callback)
    return MmsEvent(
        # A retry repeats the body; the status, outcome and date tell one report from the next.
        event_id=event_id(NAME, "REPORT", mt_id, status, data.get("outcomeId"), date),
        provider=NAME,
        event_type=event_type,
        direction="outbound",
        # A report names no number of ours. The MT's id keys it instead: every report on one MT
        # lands in one partition, in order, under the id a consumer joins it to the MT by.
        owner=mt_id,
        received_at=callback.received_at,
        provider_message_id=mt_id,
        occurred_at=optional_time(date, "date"),
        error_code=expect_str(data.get("outcomeId"), "outcomeId") if failed else None,
        error_description=expect_str(data.get("outcomeDescription"), "outcomeDescription")
        if failed
        else None,
        attributes=attributes,
    )


def _add_request_id(attributes: dict[str, str], callback: Callback) -> None:
    request_id = callback.headers.get("x-request-id", "").strip()
    if request_id:
        attributes[REQUEST_ID_ATTRIBUTE] = request_id


def _is_text(part: Part) -> bool:
    return part.media_type == "text/plain"


def _content_id(part: Part) -> str:
    return part.headers.get("content-id", "").strip().strip("<>").strip()


def _filename(part: Part) -> str | None:
    """Content-Disposition's filename when there is one (it is meant as the name; RFC 2231's
    filename* first), else the Content-Id (OpenMarket puts the file name there), else
    Content-Location's last segment. As sent: `safe_filename` makes it safe."""
    disposition = part.headers.get("content-disposition", "")
    extended = extended_filename(disposition)
    if extended:
        return extended
    plain = options(disposition)[1].get("filename")
    location = part.headers.get("content-location", "").strip().rsplit("/", 1)[-1]
    name = plain or _content_id(part) or location
    return _utf8(name) if name else None


def _utf8(value: str) -> str:
    # Header bytes were read as latin-1; most senders mean UTF-8 when they go beyond ASCII.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


def _store(
    part: Part, index: int, attributes: dict[str, str], ctx: TranslateContext[PartLimits]
) -> Media:
    if ctx.media_store is None:
        raise Refusal("no_media_store", "no media store configured for inline parts", status=500)
    raw_name = _filename(part)
    name = safe_filename(raw_name)
    if raw_name and name != raw_name:
        attributes[f"media.{index}.filename"] = raw_name
    try:
        stored = ctx.media_store.store(part.content, part.media_type, name)
    except OSError as exc:
        raise media_store_failed(exc) from None
    return replace(stored, status="stored")


# OpenMarket's documented form: LF line ends, no blank line after a part's headers.
SAMPLE = Sample(
    b"--mimeboundary\nContent-Type: application/json\nContent-Id: main\n"
    b'{"type": "MO", "moId": 123456789012345, "source": "447800000001",'
    b' "destinations": ["88600"], "date": "2014-07-16T19:20:30+00:00", "subject": "Test MMS"}\n'
    b"--mimeboundary\nContent-Type: image/jpeg\nContent-Id: image.jpg\n"
    b"/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB\n"
    b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQH/wAALCAAIAAgBAREA/8QAFAABAAAAAAAA\n"
    b"AAAAAAAAAAAAAP/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AP//Z\n"
    b"--mimeboundary\nContent-Type: text/plain\nContent-Id: text.txt\n"
    b"This is a text attachment\n--mimeboundary--\n",
    "multipart/mixed; boundary=mimeboundary",
    "an MO with an inline JPEG (stored in the media store before the reply)",
)
# OpenMarket requires 200 with an empty body, and retries anything else.
PROVIDER = Provider(
    NAME,
    translate,
    SAMPLE,
    PartLimits,
    accepted=empty_200,
    dead_lettered=empty_200,
    stores_media=True,
)
