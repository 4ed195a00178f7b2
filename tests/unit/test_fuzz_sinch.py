"""Property: whatever the bytes and Content-Type, the Sinch parser refuses cleanly or yields
records that encode with the canonical Avro schema."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.providers.sinch import PROVIDER
from tests.helpers import PAYLOADS, callback
from tests.unit.test_fuzz_bandwidth_v1 import (
    JSON_VALUES,
    NUMBERS,
    TIMES,
    URLS,
    assert_refuses_or_encodes,
    mutate,
)

FILES = sorted((PAYLOADS / "sinch").iterdir())
BODIES = [f.read_bytes() for f in FILES]
JSON_OBJECTS = [json.loads(f.read_bytes()) for f in FILES if f.suffix == ".json"]
# Our own well-formed, DOCTYPE-free documents, to mutate as trees.
XML_DOCUMENTS = [
    b for f, b in zip(FILES, BODIES, strict=True) if f.suffix == ".xml" and b"<!DOCTYPE" not in b
]
SETTINGS = settings(max_examples=300, deadline=None)

CONTENT_TYPES = st.sampled_from(
    ["", "application/xml", "Application/XML; charset=UTF-8", "text/xml; charset=utf-16",
     "application/json", "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ";;", "/xml"]
)  # fmt: skip
# Characters XML 1.0 allows: lxml refuses to put anything else in a tree. Values here are
# put into trees, so each is XML text (NUMBERS and TIMES are by construction).
XML_CHARS = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)
TEXT_VALUES = {
    "origin": st.sampled_from(["MMS_MO", "MMS_MT", "mms_mo", ""]),
    "code": st.sampled_from(["N401", "N402", ""]),
    "from": NUMBERS,
    "to": NUMBERS,
    "keyword": XML_TEXT,
    "tracking-id": XML_TEXT,
    "operator-id": XML_TEXT,
    "timestamp": TIMES,
    "message-subject": XML_TEXT,
    "file": URLS.filter(lambda url: XML_CHARS.fullmatch(url) is not None),
}
FILES_JSON = st.lists(URLS | st.fixed_dictionaries({"file": URLS}) | JSON_VALUES, max_size=25)
JSON_FIELD_VALUES = TEXT_VALUES | {"content": FILES_JSON}


def check(body: bytes, content_type: str) -> None:
    assert_refuses_or_encodes(PROVIDER, callback(body, {"Content-Type": content_type}))


@SETTINGS
@given(st.binary(max_size=4096), CONTENT_TYPES)
def test_random_bytes(body: bytes, content_type: str) -> None:
    check(body, content_type)


@SETTINGS
@given(
    st.sampled_from(BODIES),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=8),
    CONTENT_TYPES,
)
def test_byte_flips(body: bytes, flips: list[tuple[int, int]], content_type: str) -> None:
    mutated = bytearray(body)
    for index, mask in flips:
        mutated[index % len(mutated)] ^= mask
    check(bytes(mutated), content_type)


@SETTINGS
@given(st.sampled_from(BODIES), st.integers(min_value=0), CONTENT_TYPES)
def test_truncation(body: bytes, length: int, content_type: str) -> None:
    check(body[: length % len(body)], content_type)


@SETTINGS
@given(st.sampled_from(JSON_OBJECTS), st.data())
def test_json_fields_deleted_or_given_junk(original: dict[str, Any], data: st.DataObject) -> None:
    junk = dict.fromkeys(JSON_FIELD_VALUES, JSON_VALUES)
    check(json.dumps(mutate(original, junk, data, deletions=2)).encode(), "application/json")


@SETTINGS
@given(st.sampled_from(JSON_OBJECTS), st.data())
def test_json_fields_given_edge_values(original: dict[str, Any], data: st.DataObject) -> None:
    obj = mutate(original, JSON_FIELD_VALUES, data, deletions=0)
    check(json.dumps(obj).encode(), "application/json")


@SETTINGS
@given(st.sampled_from(XML_DOCUMENTS), st.data())
def test_xml_elements_deleted_or_replaced(document: bytes, data: st.DataObject) -> None:
    root = etree.fromstring(document)
    elements = [e for e in root.iter() if e is not root and isinstance(e.tag, str)]
    for element in data.draw(st.lists(st.sampled_from(elements), max_size=3)):
        parent = element.getparent()
        if parent is None:
            continue  # already removed with an ancestor
        if data.draw(st.booleans()):
            parent.remove(element)
        else:
            name = etree.QName(element).localname
            element.text = data.draw(TEXT_VALUES.get(name, XML_TEXT) | XML_TEXT)
            element.attrib.update(data.draw(st.dictionaries(st.sampled_from(["a", "b"]), XML_TEXT)))
    for name in data.draw(st.lists(st.sampled_from(sorted(TEXT_VALUES)), max_size=3)):
        etree.SubElement(root, name).text = data.draw(TEXT_VALUES[name])
    check(etree.tostring(root, encoding="utf-8", xml_declaration=True), "application/xml")


# Nested elements named after the real fields, with plausible or arbitrary text at the leaves.
XML_TREES = st.recursive(
    st.sampled_from(sorted(TEXT_VALUES)).flatmap(TEXT_VALUES.__getitem__) | XML_TEXT,
    lambda inner: st.lists(
        st.tuples(st.sampled_from([*TEXT_VALUES, "content"]), inner), max_size=5
    ),
    max_leaves=15,
)


def render(children: list[tuple[str, Any]]) -> str:
    return "".join(
        f"<{name}>{render(value) if isinstance(value, list) else escape(value)}</{name}>"
        for name, value in children
    )


def escape(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([*TEXT_VALUES, "content"]), XML_TREES), max_size=12))
def test_random_postback_trees(children: list[tuple[str, Any]]) -> None:
    check(f"<postback>{render(children)}</postback>".encode(), "application/xml")
