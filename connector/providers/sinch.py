"""Sinch MMS postbacks: inbound MMS (MO) and reports on MMS we sent (MT), in XML or JSON.

Two dialects of one postback arrive. Sinch's: `<postback>` with lower-case, hyphenated names
(origin, code, from, to, keyword, tracking-id, operator-id, timestamp, message-subject,
content/file; reports add sent-as, status, mms-id, status-details, handset), or the same as a
JSON object. Skycore's API v1.3, which accounts that came from Skycore's platform get:
`<POSTBACK>` in upper case, a few fields under other names (TRACKINGID, SPID, SUBJECT, MMSID,
SENTAS, STATUSDETAILS) and AGGREGATORID beside them; before July 2014 wrapped in
`<NOTIFICATION>`; posted as the raw body or as the form field `xml`. Element names are matched
case-insensitively and spelled as Sinch spells them (ELEMENT_NAMES), so both dialects give the
same record.

Origin MMS_MO (code N401) is an inbound MMS; its text arrives only as text/plain files, so it
stays media. Origin MMS_MT is a report on an MT, told by its code (REPORT_CODES); the saveMMS
notices that share the origin, SMS and every other origin are refused. Neither vendor documents
any signing of postbacks. Any answer but 200 is retried every 5 minutes, at most 5 times
(Skycore's v1.3 docs; Sinch's MM7 docs say the same), so a refused postback comes back as often.
"""

from __future__ import annotations

import codecs
import dataclasses
import re
from typing import Any, Literal
from xml.parsers import expat

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
    MAX_JSON_DEPTH,
    MAX_NAME_CHARS,
    Parties,
    event_id,
    expect_str,
    media_from_urls,
    media_type,
    normalize_parties,
    optional_time,
    parse_json,
    parse_unique_form,
    require_str,
    text_codec,
)
from connector.record import EventType, MmsEvent, flatten_attributes

NAME = "sinch"

MMS_MO = "MMS_MO"
MMS_MT = "MMS_MT"
# An MMS_MT postback's code to the event type, for both dialects. N202 is delivery as an SMS
# with a link to the content (N102 with sent-as SMS says the same); N103 (Sinch's) is expiry.
# N5xx and E5xx report a Device Discovery Message, an MT too, in the same way. MMS_MT's other
# codes (N003, N013, E002, E999...) say how a saved MMS template was encoded: no message.
REPORT_CODES: dict[str, EventType] = {
    "N101": "sent",
    "N102": "delivered",
    "N202": "delivered",
    "N103": "failed",
    "E101": "failed",
    "E102": "failed",
    "E202": "failed",
    "N501": "sent",
    "N502": "delivered",
    "E501": "failed",
    "E502": "failed",
}
# A status naming a failure makes a report of any code a failure: Skycore's 2014 docs give N101
# the status "Message Failed" and N102 "Message Sent/Expired" or "Message Sent/Rejected" (its
# later docs, and Sinch's, report those as E101 and E102). The documented failure statuses,
# compared without case and spaces (Sinch writes "Not Supported", once "Message,Sent/Expired");
# a status merely containing "fail" ("Delivered via SMS failover") is no failure.
FAILURE_STATUSES = {
    "messagefailed", "messagesent/failed", "messagesent/rejected", "messagesent/expired",
    "messagesent/notsupported", "message,sent/expired",
}  # fmt: skip
# Fields with a canonical home; everything else (origin, code, keyword, operator-id, unknown
# elements) lands in attributes.
CONSUMED = {"from", "to", "tracking-id", "timestamp", "message-subject", "content"}
# A report's fields with a canonical home; sent-as, status, mms-id, operator-id, handset,
# aggregatorid... land in attributes.
REPORT_CONSUMED = {"from", "to", "tracking-id", "timestamp"}
# A failure's code and reason become its error_code and error_description.
FAILURE_CONSUMED = {"code", "status-details"}
# Element names, matched case-insensitively, as the record spells them: Sinch's names, then
# Skycore's names for the same fields, and the two names only Skycore sends. Others stay as sent.
ELEMENT_NAMES = {
    name: name
    for name in ("postback", "origin", "code", "from", "to", "keyword", "tracking-id",
                 "operator-id", "timestamp", "message-subject", "content", "file", "sent-as",
                 "status", "mms-id", "status-details", "handset")
} | {
    "trackingid": "tracking-id", "spid": "operator-id", "subject": "message-subject",
    "mmsid": "mms-id", "sentas": "sent-as", "statusdetails": "status-details",
    "notification": "notification", "aggregatorid": "aggregatorid",
}  # fmt: skip
FORM = "application/x-www-form-urlencoded"
# The form field a postback is posted in, matched case-insensitively: Skycore's sample receiver
# reads `xml`, its doc comment says `XML`.
FORM_FIELD = "xml"
# The encoding an XML declaration names (XML 1.0 production EncodingDecl), read from the bytes.
DECLARED_ENCODING = re.compile(
    rb"<\?xml\s+version\s*=\s*(?:\"[^\"]*\"|'[^']*')\s+encoding\s*=\s*[\"']([A-Za-z][\w.-]*)[\"']"
)
# Between a namespace and a local name in the names expat reports. Expat refuses a namespace
# holding its separator (a space made "h ttp://..." one); no XML 1.0 text can hold U+0001.
NAMESPACE_SEPARATOR = "\x01"
# Python codecs that expat decodes itself, by expat's names for them.
EXPAT_ENCODINGS = {"utf_8": "UTF-8", "ascii": "US-ASCII", "latin_1": "ISO-8859-1"}
# UTF-16 is told by its byte-order mark or its first "<" (XML 1.0 appendix F); as with lxml,
# a declared name does not override it.
UTF16_STARTS = {
    codecs.BOM_UTF16_LE: "utf_16",
    codecs.BOM_UTF16_BE: "utf_16",
    b"<\0": "utf_16_le",
    b"\0<": "utf_16_be",
}


def translate(callback: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
    return [_event(data, callback, ctx) for data in _parse(callback, ctx.limits)]


def _event(data: dict[str, Any], callback: Callback, ctx: TranslateContext[Options]) -> MmsEvent:
    origin = require_str(data.get("origin"), "origin")
    if origin == MMS_MO:
        return _received(data, callback, ctx)
    if origin == MMS_MT:
        return _report(data, callback, ctx)
    raise Refusal("unknown_event_type", f"origin {origin!r} is neither an MMS MO nor an MMS MT")


def _received(data: dict[str, Any], callback: Callback, ctx: TranslateContext[Options]) -> MmsEvent:
    tracking_id = require_str(data.get("tracking-id"), "tracking-id")
    raw_to = require_str(data.get("to"), "to")
    # An MO is to our number (short codes stay as sent: normalize_number leaves them alone).
    parties = normalize_parties(
        raw_to, expect_str(data.get("from"), "from"), [raw_to], ctx.default_country
    )
    urls, content_attributes = _files(data.get("content"))
    attributes = flatten_attributes(data, CONSUMED) | content_attributes | parties.raw
    media = media_from_urls(urls, attributes, ctx.limits.max_media, "content")
    return MmsEvent(
        event_id=event_id(NAME, tracking_id),
        provider=NAME,
        event_type="received",
        direction="inbound",
        owner=parties.owner,
        received_at=callback.received_at,
        from_=parties.from_,
        to=parties.to,
        subject=expect_str(data.get("message-subject"), "message-subject"),
        media=media,
        provider_message_id=tracking_id,
        occurred_at=optional_time(data.get("timestamp"), "timestamp"),
        attributes=attributes,
    )


def _report(data: dict[str, Any], callback: Callback, ctx: TranslateContext[Options]) -> MmsEvent:
    code = require_str(data.get("code"), "code")
    event_type = _report_type(code, data.get("status"))
    failed = event_type == "failed"
    tracking_id = require_str(data.get("tracking-id"), "tracking-id")
    owner, parties = _report_parties(tracking_id, data, ctx)
    consumed = REPORT_CONSUMED | (FAILURE_CONSUMED if failed else set())
    timestamp = data.get("timestamp")
    return MmsEvent(
        # A retry repeats the postback; the code and its time tell one report on an MT from the
        # next. The origin keeps reports apart from MOs, whose tracking ids are another series.
        event_id=event_id(NAME, MMS_MT, tracking_id, code, timestamp),
        provider=NAME,
        event_type=event_type,
        direction="outbound",
        owner=owner,
        received_at=callback.received_at,
        from_=parties.from_,
        to=parties.to,
        provider_message_id=tracking_id,
        occurred_at=optional_time(timestamp, "timestamp"),
        error_code=code if failed else None,
        error_description=expect_str(data.get("status-details"), "status-details")
        if failed
        else None,
        attributes=flatten_attributes(data, consumed) | parties.raw,
    )


def _report_type(code: str, status: Any) -> EventType:
    event_type = REPORT_CODES.get(code)
    if event_type is None:
        raise Refusal("unknown_event_type", f"MMS_MT code {code!r} reports on no message")
    if isinstance(status, str) and "".join(status.lower().split()) in FAILURE_STATUSES:
        return "failed"
    return event_type


def _report_parties(
    tracking_id: str, data: dict[str, Any], ctx: TranslateContext[Options]
) -> tuple[str, Parties]:
    """The report's owner and parties: `from` is our number, `to` the handset. Skycore's reports
    of early 2014 have no `from`, so no number of ours: as OpenMarket's reports, the tracking id
    keys them as sent (every report on one MT in one partition, in order, under the id the MT
    is joined by)."""
    raw_from = expect_str(data.get("from"), "from")
    raw_to = expect_str(data.get("to"), "to")
    parties = normalize_parties(
        raw_from or tracking_id, raw_from, [] if raw_to is None else [raw_to], ctx.default_country
    )
    if raw_from is not None:
        return parties.owner, parties
    # An id is no number: not made E.164 (an all-digit id may look like one), nor kept as raw.
    return tracking_id, parties._replace(
        raw={k: v for k, v in parties.raw.items() if k != "raw.owner"}
    )


def _parse(callback: Callback, limits: Limits) -> list[dict[str, Any]]:
    """The callback's postbacks, each as the JSON form would have its fields."""
    # A UTF-8 BOM would hide the first byte from sniffing, and orjson refuses it.
    body = callback.body.removeprefix(codecs.BOM_UTF8)
    match _format(callback, body):
        case "xml":
            return _xml(*_decodable(body), limits)
        case "form":
            return _form(body, limits)
    data = parse_json(body, max_elements=limits.max_elements)
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected a JSON object")
    return [data]


def _format(callback: Callback, body: bytes) -> Literal["xml", "json", "form"]:
    """The Content-Type decides; without a usable one, the first byte of the body does. A form
    is read only when the Content-Type names one: PHP fills $_POST, which Skycore's sample
    receiver reads, from no other."""
    header = callback.content_type or callback.headers.get("content-type", "")
    kind = media_type(header)
    if kind.endswith(("/xml", "+xml")):
        return "xml"
    if kind.endswith(("/json", "+json")):
        return "json"
    first = body.lstrip()[:1]
    if first == b"<":
        return "xml"
    if first == b"{":
        return "json"
    if kind == FORM:
        return "form"
    raise Refusal(
        "unsupported_media_type",
        f"Content-Type {header!r} and a body that is neither XML nor a JSON object",
    )


def _form(body: bytes, limits: Limits) -> list[dict[str, Any]]:
    """The postbacks in the form field `xml`, the form's other fields beside each one's
    ("form.<name>")."""
    fields = parse_unique_form(body, max_elements=limits.max_elements)
    names = [name for name in fields if name.lower() == FORM_FIELD]
    if len(names) > 1:
        raise Refusal("duplicate_field", f"the postback is sent twice, as {' and '.join(names)}")
    xml = require_str(fields.pop(names[0]) if names else None, f"form field {FORM_FIELD!r}")
    beside = {f"form.{name}": value for name, value in fields.items()}
    # The form's text is decoded already (UTF-8): an encoding its declaration names is not the
    # text's any more, and expat, told the encoding, ignores the declaration.
    # One budget for the form's fields and the document's elements together.
    rest = dataclasses.replace(limits, max_elements=max(1, limits.max_elements - len(fields)))
    return [beside | postback for postback in _xml("UTF-8", xml.encode(), rest)]


def _xml(encoding: str, text: bytes, limits: Limits) -> list[dict[str, Any]]:
    # Expat reads a whole start tag before it reports it: one tag with 1.1 million attributes
    # (12 MB) took 2.7 s before a handler could count them, 500,000 namespace declarations
    # (which reach no handler) 0.9 s. Each attribute or declaration needs an "=": a body with
    # more of them than the budget is refused unread (8 ms for 12 MB). "=" in text counts too;
    # a real postback has a handful.
    if text.count(b"=") > limits.max_elements:
        raise Refusal(
            "too_many_elements",
            f"XML with more than {limits.max_elements} '=' (each attribute needs one)",
            status=413,
        )
    # Python's expat, a fresh parser per document: its name pool and interned names go with it.
    # lxml kept every element name ever seen in a per-thread dictionary that is never freed;
    # 873 callbacks with 400 KB of distinct names (349 MB, RSS 26 -> 389 MB) filled it, and
    # from then on every postback, the documented example too, was refused as invalid_xml.
    parser = expat.ParserCreate(encoding, NAMESPACE_SEPARATOR)
    # Expat's default, stated: no parameter entity (`%name;`) is ever expanded.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    builder = _PostbackBuilder(limits)
    # Called when `<!DOCTYPE name` is read, before any declaration of its internal subset.
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise Refusal("invalid_xml", f"body is not well-formed XML: {exc}") from None
    if builder.root_name != "postback":
        raise Refusal("invalid_event", f"expected a <postback> document, got <{builder.root_name}>")
    return _postbacks(builder.root)


def _postbacks(root: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's postbacks: the document itself or, in Skycore's form before July 2014,
    each <NOTIFICATION> in it, with whatever else the document holds beside ("postback.*")."""
    wrapped = root.pop("notification", None)
    if wrapped is None:
        return [_fields(root)]
    notifications = wrapped if isinstance(wrapped, list) else [wrapped]
    if not all(isinstance(notification, dict) for notification in notifications):
        raise Refusal("invalid_event", "a <NOTIFICATION> holds no fields")
    beside = {f"postback.{key}": value for key, value in _fields(root).items()}
    return [beside | _fields(notification) for notification in notifications]


def _fields(node: dict[str, Any]) -> dict[str, Any]:
    """A postback element's fields. A field element with XML attributes, e.g.
    <to type="shortcode">28444</to>, is still the field: its text in place, its attributes
    beside it ("to.@type")."""
    data: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and all(k.startswith(("@", "#")) for k in value):
            data[key] = value.get("#text", "")
            data |= {f"{key}.{k}": v for k, v in value.items() if k != "#text"}
        else:
            data[key] = value
    return data


def _decodable(body: bytes) -> tuple[str, bytes]:
    """The encoding expat is told to read `body` in, and the bytes to give it.

    Expat is always given the encoding, so it never looks up the one a document declares:
    pyexpat would ask Python's codec registry, which caches every name it is asked for, misses
    included (an `encoding="<random>"` per callback grew it for ever). Labels are looked up
    only in parsing's fixed charset table. Expat reads UTF-8, ASCII and Latin-1 bytes itself;
    Python decodes the rest to UTF-8 first (as pyexpat would for a str): UTF-16 (expat would
    take a lone surrogate and the character after it for a pair), Shift_JIS, windows-1252...
    """
    codec = UTF16_STARTS.get(body[:2])
    if codec is None:
        declared = DECLARED_ENCODING.match(body)
        if declared is None:
            return "UTF-8", body
        label = declared[1].decode("ascii")
        codec = text_codec(label)
        if codec is None:
            raise Refusal("unsupported_encoding", f"XML declared in an unknown encoding {label!r}")
        if codec in EXPAT_ENCODINGS:
            return EXPAT_ENCODINGS[codec], body
    try:
        return "UTF-8", body.decode(codec).encode()
    except UnicodeDecodeError as exc:
        raise Refusal("invalid_xml", f"body is not well-formed XML: {exc}") from None


def _refuse_doctype(*_: object) -> None:
    raise Refusal(
        "xml_doctype_forbidden", "XML with a DOCTYPE is refused (entities, external DTDs)"
    )


class _PostbackBuilder:
    """Expat handlers: the document as the JSON API would send it, matched on local names
    (case-insensitively, spelled as ELEMENT_NAMES has them).

    Elements with neither children nor XML attributes become their stripped text (CDATA and
    text around comments included); others become objects (XML attributes as "@name", mixed
    text as "#text"); repeated elements become lists. Building straight from parser events means
    no tree; the budgets are checked as each element opens, so a hostile body is refused at the
    first element past them and the rest of it is never read.
    """

    def __init__(self, limits: Limits) -> None:
        self._open: list[tuple[str, dict[str, Any], list[str]]] = []
        self.root: dict[str, Any] = {}
        self.root_name = ""
        # Elements and attributes alike become fields of the record: both count.
        self._max_elements, self._elements = limits.max_elements, 0
        self._max_media, self._files = limits.max_media, 0
        self._max_events, self._notifications = limits.max_events, 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._elements += 1 + len(attrib)
        if self._elements > self._max_elements:
            raise Refusal(
                "too_many_elements",
                f"XML over the {self._max_elements}-element budget (elements and attributes)",
                status=413,
            )
        depth = len(self._open)
        if depth >= MAX_JSON_DEPTH:
            raise Refusal("xml_too_deep", f"XML nesting deeper than {MAX_JSON_DEPTH} levels")
        local = _local(tag)
        if len(local) > MAX_NAME_CHARS or any(len(_local(key)) > MAX_NAME_CHARS for key in attrib):
            # Each name becomes an attribute key: 9,500 names of 1,000 characters took 350 ms
            # to parse, flatten and encode before the record was found too large.
            raise Refusal("name_too_long", f"an XML name over {MAX_NAME_CHARS} characters", 413)
        name = ELEMENT_NAMES.get(local.lower(), local)
        if depth == 1 and name == "notification":
            self._notifications += 1
            if self._notifications > self._max_events:
                raise Refusal(
                    "too_many_events",
                    f"more than {self._max_events} notifications, over the budget",
                    status=413,
                )
            self._files = 0  # each postback's files count against max_media
        elif name == "file" and self._is_postback(depth - 2) and self._open[-1][0] == "content":
            self._files += 1
            if self._files > self._max_media:
                raise Refusal("too_many_media", f"content: more than {self._max_media} files", 413)
        attributes = {f"@{_local(key)}": value for key, value in attrib.items()}
        self._open.append((name, attributes, []))

    def _is_postback(self, depth: int) -> bool:
        """Whether the open element at `depth` is a postback: the document, or a NOTIFICATION
        in it (whose <content><file>s are media)."""
        return depth == 0 or (depth == 1 and self._open[1][0] == "notification")

    def data(self, text: str) -> None:
        self._open[-1][2].append(text)

    def end(self, tag: str) -> None:
        name, node, texts = self._open.pop()
        text = "".join(texts).strip()
        if not self._open:
            # The document element is the event object, like the JSON body.
            self.root, self.root_name = node | ({"#text": text} if text else {}), name
            return
        if node and text:
            node["#text"] = text
        value = node or text
        parent = self._open[-1][1]
        if name not in parent:
            parent[name] = value
        elif isinstance(parent[name], list):
            parent[name].append(value)
        else:
            parent[name] = [parent[name], value]


def _local(name: str) -> str:
    return name.rpartition(NAMESPACE_SEPARATOR)[2]


def _files(content: Any) -> tuple[list[str], dict[str, str]]:
    """The file URLs in `content`, either form, and its other fields as attributes."""
    if content is None or content == "":
        return [], {}
    if isinstance(content, dict):
        # XML: <content><file>URL</file>...</content> (a repeated <file> became a list).
        extras = flatten_attributes(content, {"content.file"}, "content.")
        files = content.get("file")
        items = files if isinstance(files, list) else [files]
    elif isinstance(content, list):
        # JSON: [{"file": URL}, ...]; plain URL strings are accepted as well.
        extras, items = {}, content
    else:
        raise Refusal("invalid_field", "content: expected the list of files")
    urls: list[str] = []
    for i, item in enumerate(items):
        url = item
        if isinstance(item, dict):
            # JSON {"file": URL, ...}; XML <file type="...">URL</file> keeps its URL as "#text".
            key, prefix = "file" if "file" in item else "#text", f"content.{i}."
            extras |= flatten_attributes(item, {prefix + key}, prefix)
            url = item.get(key)
        if uri := expect_str(url, f"content[{i}].file"):
            urls.append(uri)
    return urls, extras


SAMPLE = Sample(
    b'{"origin": "MMS_MO", "code": "N401", "from": "14082257140", "to": "28444",'
    b' "message-subject": "Weekend pics", "tracking-id": "MMS_MO_pQ83xZk1",'
    b' "timestamp": "2024-05-17T18:44:02-04:00",'
    b' "content": [{"file": "https://mms-content.example.com/mo/MMS_MO_pQ83xZk1/beach.jpg"}]}',
    "application/json",
    "an MMS to our short code 28444 with one picture",
)
# Sinch (and Skycore before it) retries any answer but 200, every 5 minutes, 5 times: a
# dead-lettered postback gets 200.
PROVIDER = Provider(NAME, translate, SAMPLE, dead_lettered=dead_lettered_200)
