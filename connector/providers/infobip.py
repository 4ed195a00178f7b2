"""Infobip MMS webhooks: received MMS and delivery reports, JSON batches of `results`.

Received MMS (renderer MO_MMS_2, Infobip's default): each result is one MMS to our number
(`to`), its parts in `message[]` (text: contentType + value; media: contentType + url), a group
MMS's recipients in `group[]`. Delivery reports on MMS we sent: v2 (`/mms/2/messages`, `sender`
is our number) and the deprecated v1 (no sender, `smsCount`). Reports come batched, up to a
notification profile's maxBucketSize (at most 2000): past `max_events` a batch is refused.
XML reports (sent only when a send asked for them) are refused. Infobip publishes no signature
we can check; it retries anything but 200, 1 min + n² min apart, for an undocumented time.
"""

from __future__ import annotations

from typing import Any

from connector.providers.contract import (
    Callback,
    Limits,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
    dead_lettered_200,
)
from connector.providers.fields import (
    Parties,
    event_id,
    expect_str,
    expect_str_list,
    media_from_urls,
    media_type,
    normalize_parties,
    optional_time,
    parse_json,
    require_str,
    segment_count,
)
from connector.record import EventType, Media, MmsEvent, flatten_attributes

NAME = "infobip"

# Status groups (status.groupName) to event types; the status itself stays in attributes.
STATUS_GROUPS: dict[str, EventType] = {
    "PENDING": "sending",
    "ACCEPTED": "sending",
    "DELIVERED": "delivered",
    "UNDELIVERABLE": "failed",
    "EXPIRED": "failed",
    "REJECTED": "failed",
}

# Fields with a canonical home; everything else lands in attributes.
INBOUND_CONSUMED = {
    "messageId", "from", "to", "receivedAt", "message", "group", "callbackData", "applicationId",
}  # fmt: skip
REPORT_CONSUMED = {"messageId", "sender", "to", "doneAt", "callbackData"}
# Only a failure's error has a canonical home; on other reports the error stays in attributes.
ERROR_CONSUMED = {"error.id", "error.description"}
# Fields v2 and v1 reports name differently, v2's first (the SDK's 6.x fixture mixes them).
SEGMENTS_PATHS = ("messageCount", "smsCount")
APPLICATION_PATHS = ("platform.applicationId", "applicationId")
# The batch's own fields (messageCount, pendingMessageCount), apart from a result's own.
BATCH_PREFIX = "batch."
NO_ERROR = "0"


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    if _is_xml(callback):
        raise Refusal(
            "xml_not_supported",
            "XML reports are not translated: ask for JSON on the send (webhooks.contentType, "
            "/mms/1: notifyContentType application/json)",
            status=415,
        )
    data = parse_json(callback.body, max_elements=ctx.limits.max_elements)
    results = _results(data, ctx.limits)
    batch = flatten_attributes(data, {f"{BATCH_PREFIX}results"}, BATCH_PREFIX)
    return [_event(item, i, batch, callback, ctx) for i, item in enumerate(results)]


def _is_xml(callback: Callback) -> bool:
    """The Content-Type says XML, or the body starts as XML does."""
    header = callback.content_type or callback.headers.get("content-type", "")
    kind = media_type(header)
    return kind.endswith(("/xml", "+xml")) or callback.body.lstrip()[:1] == b"<"


def _results(data: Any, limits: Limits) -> list[Any]:
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected a JSON object holding results")
    results = data.get("results")
    if results is None:
        if "notificationType" in data:
            raise Refusal(
                "unknown_event_type",
                f"notificationType {data['notificationType']!r}: a click, not a message event",
            )
        raise Refusal("missing_field", "results is required")
    if not isinstance(results, list):
        raise Refusal("invalid_field", "results: expected a list")
    if not results:
        raise Refusal("no_events", "the callback holds an empty list of results")
    if len(results) > limits.max_events:
        raise Refusal(
            "too_many_events",
            f"{len(results)} results, over the {limits.max_events} budget",
            status=413,
        )
    return results


def _event(
    item: Any, index: int, batch: dict[str, str], callback: Callback, ctx: TranslateContext[Options]
) -> MmsEvent:
    where = f"results[{index}]"
    if not isinstance(item, dict):
        raise Refusal("invalid_event", f"{where}: expected an object")
    # A report has a status; a received message has none.
    build = _report if "status" in item else _inbound
    return build(item, where, batch, callback, ctx)


def _inbound(
    item: dict[str, Any],
    where: str,
    batch: dict[str, str],
    callback: Callback,
    ctx: TranslateContext[Options],
) -> MmsEvent:
    if "message" not in item and "text" in item:
        # An SMS to the same number reaches the same URL: text, no parts.
        raise Refusal("unknown_event_type", f"{where} is an SMS (text, no parts), not an MMS")
    message_id = require_str(item.get("messageId"), f"{where}.messageId")
    raw_to = require_str(item.get("to"), f"{where}.to")
    group_to, group_cc, group_attributes = _group(item.get("group"), where)
    # The group's `to` repeats our number (Infobip's example): it is the owner, listed once.
    parties = normalize_parties(
        raw_to,
        expect_str(item.get("from"), f"{where}.from"),
        [raw_to, *(n for n in group_to if n != raw_to)],
        ctx.default_country,
        group_cc,
        max_recipients=ctx.limits.max_recipients,
    )
    texts, media_parts, part_attributes = _parts(item.get("message"), where)
    attributes = (
        batch
        | flatten_attributes(item, INBOUND_CONSUMED)
        | group_attributes
        | part_attributes
        | parties.raw
    )
    media = _media(media_parts, attributes, ctx.limits.max_media, f"{where}.message")
    return MmsEvent(
        # messageId is Infobip's id of the received message: a retry carries the same one.
        event_id=event_id(NAME, "MO", message_id),
        provider=NAME,
        event_type="received",
        direction="inbound",
        owner=parties.owner,
        received_at=callback.received_at,
        from_=parties.from_,
        to=parties.to,
        cc=parties.cc,
        text="\n".join(texts) or None,
        media=media,
        provider_message_id=message_id,
        application_id=expect_str(item.get("applicationId"), f"{where}.applicationId"),
        # The inbound configuration's callbackData: ours, as a send's is on its reports.
        tag=expect_str(item.get("callbackData"), f"{where}.callbackData"),
        occurred_at=optional_time(item.get("receivedAt"), f"{where}.receivedAt"),
        attributes=attributes,
    )


def _group(group: Any, where: str) -> tuple[list[str], list[str], dict[str, str]]:
    """A group MMS's `to` and `cc` recipients, and whatever else its items carry (`group.N.*`)."""
    if group is None:
        return [], [], {}
    if not isinstance(group, list):
        raise Refusal("invalid_field", f"{where}.group: expected a list")
    to: list[str] = []
    cc: list[str] = []
    extras: dict[str, str] = {}
    for i, item in enumerate(group):
        field, prefix = f"{where}.group[{i}]", f"group.{i}."
        if not isinstance(item, dict):
            raise Refusal("invalid_field", f"{field}: expected an object")
        to += expect_str_list(item.get("to"), f"{field}.to")
        cc += expect_str_list(item.get("cc"), f"{field}.cc")
        extras |= flatten_attributes(item, {f"{prefix}to", f"{prefix}cc"}, prefix)
    return to, cc, extras


def _parts(
    message: Any, where: str
) -> tuple[list[str], list[tuple[str, str | None]], dict[str, str]]:
    """The text of the text parts, the media parts' (url, contentType), and the rest of what the
    parts carry (`message.N.*`).

    A part with a url is media; one with a value is text when it is text/plain (the SDK tells
    the two apart by these fields). Any other part (SMIL, say) stays whole in attributes.
    """
    field = f"{where}.message"
    if isinstance(message, str):
        # The /mms/1 pull API's form (a JSON string of mms_parts): no webhook documents it.
        raise Refusal(
            "unsupported_message_format",
            f"{field} is a string (the pull API's encoded mms_parts), not a list of parts",
        )
    if message is None:
        raise Refusal("missing_field", f"{field} is required")
    if not isinstance(message, list):
        raise Refusal("invalid_field", f"{field}: expected a list of parts")
    texts: list[str] = []
    media: list[tuple[str, str | None]] = []
    extras: dict[str, str] = {}
    for i, part in enumerate(message):
        at, prefix = f"{field}[{i}]", f"message.{i}."
        if not isinstance(part, dict):
            raise Refusal("invalid_field", f"{at}: expected an object")
        content_type = expect_str(part.get("contentType"), f"{at}.contentType")
        url = expect_str(part.get("url"), f"{at}.url")
        consumed: set[str] = set()
        if url is not None:
            media.append((url, content_type))
            consumed = {"url", "contentType"}
        elif _plain_text(content_type):
            text = expect_str(part.get("value"), f"{at}.value")
            texts += [text] if text is not None else []
            consumed = {"value", "contentType"}
        extras |= flatten_attributes(part, {prefix + key for key in consumed}, prefix)
    return texts, media, extras


def _plain_text(content_type: str | None) -> bool:
    # Parameters aside: the pull API's parts say "text/plain; charset=utf-8".
    return content_type is None or media_type(content_type) == "text/plain"


def _media(
    parts: list[tuple[str, str | None]], attributes: dict[str, str], max_media: int, where: str
) -> list[Media]:
    """The media parts as Media with their content types."""
    urls, types = [url for url, _ in parts], [content_type for _, content_type in parts]
    return media_from_urls(urls, attributes, max_media, where, types)


def _report(
    item: dict[str, Any],
    where: str,
    batch: dict[str, str],
    callback: Callback,
    ctx: TranslateContext[Options],
) -> MmsEvent:
    message_id = require_str(item.get("messageId"), f"{where}.messageId")
    status = item.get("status")
    if not isinstance(status, dict):
        raise Refusal("invalid_field", f"{where}.status: expected an object")
    group = require_str(status.get("groupName"), f"{where}.status.groupName")
    event_type = STATUS_GROUPS.get(group.strip().upper())
    if event_type is None:
        raise Refusal("unknown_status", f"{where}.status.groupName {group!r} is no status group")
    error = item.get("error")
    error = error if isinstance(error, dict) else {}  # anything else stays in attributes
    failed = event_type == "failed"
    error_id = expect_str(error.get("id"), f"{where}.error.id") if failed else None
    # A failure's error is its error_code; NO_ERROR (0) on a failure says nothing.
    coded = error_id not in (None, NO_ERROR)

    owner, parties = _report_parties(message_id, item, where, ctx)
    segments_path, segments = _first(item, SEGMENTS_PATHS)
    application_path, application_id = _first(item, APPLICATION_PATHS)
    consumed = REPORT_CONSUMED | {segments_path, application_path}
    attributes = (
        batch
        | flatten_attributes(item, consumed | (ERROR_CONSUMED if coded else set()))
        | parties.raw
    )
    done_at = item.get("doneAt")
    # A retry repeats the report; the status and doneAt tell one report on a message from the
    # next (intermediate PENDING reports included).
    status_id = expect_str(status.get("id"), f"{where}.status.id")
    return MmsEvent(
        event_id=event_id(NAME, "DLR", message_id, group, status_id, done_at),
        provider=NAME,
        event_type=event_type,
        direction="outbound",
        owner=owner,
        received_at=callback.received_at,
        from_=parties.from_,
        to=parties.to,
        provider_message_id=message_id,
        application_id=expect_str(application_id, f"{where}.{application_path}"),
        tag=expect_str(item.get("callbackData"), f"{where}.callbackData"),
        occurred_at=optional_time(done_at, f"{where}.doneAt"),
        segment_count=segment_count(segments, attributes, segments_path),
        error_code=error_id if coded else None,
        error_description=expect_str(error.get("description"), f"{where}.error.description")
        if coded
        else None,
        attributes=attributes,
    )


def _report_parties(
    message_id: str, item: dict[str, Any], where: str, ctx: TranslateContext[Options]
) -> tuple[str, Parties]:
    """The report's owner and parties: v2's sender is our number; a report without one (v1)
    names no number of ours, so, as OpenMarket's reports, the message's id keys it as sent
    (every report on one MT in one partition, in order, under the id it is joined by)."""
    raw_sender = expect_str(item.get("sender"), f"{where}.sender")
    parties = normalize_parties(
        raw_sender or message_id,
        raw_sender,
        expect_str_list(item.get("to"), f"{where}.to"),
        ctx.default_country,
        max_recipients=ctx.limits.max_recipients,
    )
    if raw_sender is not None:
        return parties.owner, parties
    # An id is no number: not made E.164 (an all-digit id may look like one), nor kept as raw.
    return message_id, parties._replace(
        raw={k: v for k, v in parties.raw.items() if k != "raw.owner"}
    )


def _first(item: dict[str, Any], paths: tuple[str, ...]) -> tuple[str, Any]:
    """The first of `paths` (dotted) that `item` holds a value at, and the value; the first path
    and None when it holds none."""
    for path in paths:
        node: Any = item
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return path, node
    return paths[0], None


SAMPLE = Sample(
    b'{"results": [{"messageId": "2034072219640523073", "from": "14155550123",'
    b' "to": "14155550100", "receivedAt": "2024-05-17T18:44:02.512+0000",'
    b' "userAgent": "iPhone_15_A3090", "message": ['
    b'{"contentType": "text/plain", "value": "Here is the photo from Saturday"},'
    b' {"contentType": "image/jpeg",'
    b' "url": "https://media.example.com/infobip/2034072219640523073/1"}],'
    b' "price": {"pricePerMessage": 0, "currency": "USD"}}],'
    b' "messageCount": 1, "pendingMessageCount": 0}',
    "application/json",
    "an MMS to our number with a picture (Infobip's media host is undocumented: example.com)",
)
# Infobip retries anything but 200: a dead-lettered callback gets 200.
PROVIDER = Provider(NAME, translate, SAMPLE, dead_lettered=dead_lettered_200)
