"""Sinch MMS MO postbacks: one inbound MMS per callback, as XML or JSON.

Both forms carry origin (MMS_MO), code (N401), from, to, keyword, tracking-id, operator-id,
timestamp, message-subject and content: the file URLs (XML `<content><file>URL</file>...`, JSON
`"content": [{"file": URL}, ...]`). Text arrives only as text/plain files, so it stays media.
Only MMS MO postbacks are documented; other origins (delivery reports) are refused. Sinch does
not retry 4xx answers, so a refusal is final.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Any, Literal, cast

from lxml import etree

from connector.callback import Callback, Provider, Refusal, TranslateContext
from connector.parsing import (
    MAX_JSON_DEPTH,
    event_id,
    expect_str,
    media_from_urls,
    normalize_parties,
    optional_time,
    parse_json,
)
from connector.record import MmsEvent, flatten_attributes

NAME = "sinch"

MMS_MO = "MMS_MO"
# Fields with a canonical home; everything else (origin, code, keyword, operator-id, unknown
# elements) lands in attributes.
CONSUMED = {"from", "to", "tracking-id", "timestamp", "message-subject", "content"}
# No DTD is ever read or fetched, and entities are never expanded (DOCTYPEs are refused anyway).
SECURE_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
}


def translate(callback: Callback, ctx: TranslateContext) -> list[MmsEvent]:
    data = _parse(callback)
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


def _parse(callback: Callback) -> dict[str, Any]:
    # A UTF-8 BOM would hide the first byte from sniffing, and orjson refuses it.
    body = callback.body.removeprefix(codecs.BOM_UTF8)
    data = _xml(body) if _format(callback, body) == "xml" else parse_json(body)
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


def _xml(body: bytes) -> dict[str, Any]:
    target = _PostbackBuilder()
    parser = etree.XMLParser(target=target, **SECURE_PARSER_OPTIONS)
    try:
        document = etree.fromstring(body, parser)
    except etree.LxmlError as exc:
        raise Refusal("invalid_xml", f"body is not well-formed XML: {exc}") from None
    if target.root_name != "postback":
        raise Refusal("invalid_event", f"expected a <postback> document, got <{target.root_name}>")
    # A field element with XML attributes, e.g. <to type="shortcode">28444</to>, is still the
    # field: its text in place, its attributes beside it ("to.@type").
    data: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict) and all(k.startswith(("@", "#")) for k in value):
            data[key] = value.get("#text", "")
            data |= {f"{key}.{k}": v for k, v in value.items() if k != "#text"}
        else:
            data[key] = value
    return data


class _PostbackBuilder:
    """lxml parser target: the document as the JSON API would send it, matched on local names.

    Elements with neither children nor XML attributes become their stripped text (CDATA and
    text around comments included); others become objects (XML attributes as "@name", mixed
    text as "#text"); repeated elements become lists. Building straight from parser events means
    no tree, and a DOCTYPE is refused before any of its declarations is read.
    """

    def __init__(self) -> None:
        self._open: list[tuple[str, dict[str, Any], list[str]]] = []
        self._root: dict[str, Any] = {}
        self.root_name = ""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise Refusal(
            "xml_doctype_forbidden", "XML with a DOCTYPE is refused (entities, external DTDs)"
        )

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        if len(self._open) >= MAX_JSON_DEPTH:
            raise Refusal("xml_too_deep", f"XML nesting deeper than {MAX_JSON_DEPTH} levels")
        attributes = {f"@{_local(name)}": value for name, value in attrib.items()}
        self._open.append((_local(tag), attributes, []))

    def data(self, text: str) -> None:
        self._open[-1][2].append(text)

    def end(self, tag: str) -> None:
        name, node, texts = self._open.pop()
        text = "".join(texts).strip()
        if not self._open:
            # The document element is the event object, like the JSON body.
            self._root, self.root_name = node | ({"#text": text} if text else {}), name
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

    def close(self) -> dict[str, Any]:
        return self._root


def _local(name: str) -> str:
    # "{namespace}local" as lxml spells qualified names.
    return name.rsplit("}", 1)[-1]


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


PROVIDER = Provider(NAME, translate)
