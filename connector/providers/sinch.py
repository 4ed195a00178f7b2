"""Sinch MMS MO postbacks: one inbound MMS per callback, as XML or JSON.

Both forms carry origin (MMS_MO), code (N401), from, to, keyword, tracking-id, operator-id,
timestamp, message-subject and content: the file URLs (XML `<content><file>URL</file>...`, JSON
`"content": [{"file": URL}, ...]`). Text arrives only as text/plain files, so it stays media.
Only MMS MO postbacks are documented; other origins (delivery reports) are refused. Sinch does
not retry 4xx answers, so a refusal is final.
"""

from __future__ import annotations

import codecs
import re
from typing import Any, Literal, cast
from xml.parsers import expat

from connector.providers.contract import (
    Callback,
    Limits,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
)
from connector.providers.fields import (
    MAX_JSON_DEPTH,
    event_id,
    expect_str,
    media_from_urls,
    normalize_parties,
    optional_time,
    parse_json,
    text_codec,
)
from connector.record import MmsEvent, flatten_attributes

NAME = "sinch"

MMS_MO = "MMS_MO"
# Fields with a canonical home; everything else (origin, code, keyword, operator-id, unknown
# elements) lands in attributes.
CONSUMED = {"from", "to", "tracking-id", "timestamp", "message-subject", "content"}
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
    data = _parse(callback, ctx.limits)
    origin = expect_str(data.get("origin"), "origin", required=True)
    if origin != MMS_MO:
        raise Refusal("unknown_event_type", f"origin {origin!r} is not an MMS MO postback")
    tracking_id = expect_str(data.get("tracking-id"), "tracking-id", required=True)
    # required=True refuses a missing value, so this is a str.
    raw_to = cast(str, expect_str(data.get("to"), "to", required=True))
    # An MO is to our number (short codes stay as sent: normalize_number leaves them alone).
    parties = normalize_parties(
        raw_to, expect_str(data.get("from"), "from"), [raw_to], ctx.default_country
    )
    urls, content_attributes = _files(data.get("content"))
    attributes = flatten_attributes(data, CONSUMED) | content_attributes | parties.raw
    media = media_from_urls(urls, attributes, ctx.limits.max_media, "content")
    return [
        MmsEvent(
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
    ]


def _parse(callback: Callback, limits: Limits) -> dict[str, Any]:
    # A UTF-8 BOM would hide the first byte from sniffing, and orjson refuses it.
    body = callback.body.removeprefix(codecs.BOM_UTF8)
    if _format(callback, body) == "xml":
        data = _xml(body, limits)
    else:
        data = parse_json(body, max_elements=limits.max_elements)
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected a JSON object")
    return data


def _format(callback: Callback, body: bytes) -> Literal["xml", "json"]:
    """The Content-Type decides; without a usable one, the first byte of the body does."""
    header = callback.content_type or callback.headers.get("content-type", "")
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type.endswith(("/xml", "+xml")):
        return "xml"
    if media_type.endswith(("/json", "+json")):
        return "json"
    first = body.lstrip()[:1]
    if first == b"<":
        return "xml"
    if first == b"{":
        return "json"
    raise Refusal(
        "unsupported_media_type",
        f"Content-Type {header!r} and a body that is neither XML nor a JSON object",
    )


def _xml(body: bytes, limits: Limits) -> dict[str, Any]:
    encoding, text = _decodable(body)
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
    # A field element with XML attributes, e.g. <to type="shortcode">28444</to>, is still the
    # field: its text in place, its attributes beside it ("to.@type").
    data: dict[str, Any] = {}
    for key, value in builder.root.items():
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


# Sinch's element names are a few words long; nothing real comes near this.
MAX_NAME_CHARS = 128


class _PostbackBuilder:
    """Expat handlers: the document as the JSON API would send it, matched on local names.

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
        name = _local(tag)
        if len(name) > MAX_NAME_CHARS or any(len(_local(key)) > MAX_NAME_CHARS for key in attrib):
            # Each name becomes an attribute key: 9,500 names of 1,000 characters took 350 ms
            # to parse, flatten and encode before the record was found too large.
            raise Refusal("name_too_long", f"an XML name over {MAX_NAME_CHARS} characters", 413)
        if name == "file" and depth == 2 and self._open[1][0] == "content":
            self._files += 1
            if self._files > self._max_media:
                raise Refusal("too_many_media", f"content: more than {self._max_media} files", 413)
        attributes = {f"@{_local(key)}": value for key, value in attrib.items()}
        self._open.append((name, attributes, []))

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
PROVIDER = Provider(NAME, translate, SAMPLE)
