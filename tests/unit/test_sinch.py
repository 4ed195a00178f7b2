"""Sinch MMS MO postbacks (XML and JSON) to canonical records, table-driven."""

from __future__ import annotations

import encodings
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connector.callback import Callback, Refusal, TranslateContext
from connector.providers.sinch import PROVIDER
from connector.record import Media, event_id
from tests.helpers import CTX, RECEIVED_AT, callback, fields, payload

CONTENT = "https://mms-content.example.com/mo"
XML = {"Content-Type": "application/xml"}
JSON = {"Content-Type": "application/json"}
# The fields every MO must have, for building small XML postbacks.
REQUIRED = "<origin>MMS_MO</origin><tracking-id>MMS_MO_t1</tracking-id><to>28444</to>"


def translate(
    body: bytes | str, headers: dict[str, str] | None = None, ctx: TranslateContext = CTX
):
    return PROVIDER.translate(callback(body, headers), ctx)


def postback(*elements: str) -> str:
    return f"<postback>{REQUIRED}{''.join(elements)}</postback>"


def mo_json(**fields: Any) -> str:
    """A JSON MO with the required fields; keyword names use '_' for the documented '-'."""
    data = {"origin": "MMS_MO", "tracking-id": "MMS_MO_t1", "to": "28444"}
    data |= {k.replace("_", "-"): v for k, v in fields.items()}
    return json.dumps(data, ensure_ascii=False)


def test_mms_mo_xml_every_field() -> None:
    # The documented XML example, with real URLs in place of the placeholders.
    [event] = translate(payload("sinch", "mms_mo.xml"), XML)
    assert event.to_avro() == {
        "event_id": event_id("sinch", "MMS_MO_iLnCRrL6"),
        "provider": "sinch",
        "event_type": "received",
        "direction": "inbound",
        "owner": "28444",
        "from": "+14082257140",
        "to": ["28444"],
        "cc": [],
        "bcc": [],
        "text": None,
        "subject": None,
        "media": [
            {
                "uri": f"{CONTENT}/MMS_MO_iLnCRrL6/{name}",
                "content_type": None,
                "size": None,
                "sha256": None,
                "filename": name,
                "source_uri": None,
                "url": None,
                "status": "provider",
                "reason": None,
            }
            for name in ("IMG_0417.jpg", "text_0.txt", "smil.xml")
        ],
        "provider_message_id": "MMS_MO_iLnCRrL6",
        "application_id": None,
        "tag": None,
        "occurred_at": datetime(2014, 2, 3, 16, 19, 49, tzinfo=UTC),
        "received_at": RECEIVED_AT,
        "segment_count": None,
        "error_code": None,
        "error_description": None,
        "attributes": {
            "origin": "MMS_MO",
            "code": "N401",
            "keyword": "all",
            "operator-id": "31002",
            "raw.from": "14082257140",
        },
    }


def test_xml_and_json_forms_of_one_postback_give_one_record() -> None:
    as_json = mo_json(
        code="N401",
        tracking_id="MMS_MO_iLnCRrL6",
        **{"from": "14082257140"},
        keyword="all",
        operator_id="31002",
        timestamp="2014-02-03T11:19:49-05:00",
        message_subject="",
        content=[{"file": f"{CONTENT}/MMS_MO_iLnCRrL6/{n}"} for n in ("IMG_0417.jpg", "text_0.txt")]
        + [f"{CONTENT}/MMS_MO_iLnCRrL6/smil.xml"],
    )
    [from_xml] = translate(payload("sinch", "mms_mo.xml"), XML)
    [from_json] = translate(as_json, JSON)
    assert from_json == from_xml


FILES = [
    # (payload file, headers, expected canonical fields)
    (
        "mms_mo.json",
        JSON,
        {
            "event_id": event_id("sinch", "MMS_MO_pQ83xZk1"),
            "owner": "28444",
            "from": "+14082257140",
            "to": ["28444"],
            "subject": "Weekend pics",
            "text": None,
            "media": [
                {
                    "uri": f"{CONTENT}/MMS_MO_pQ83xZk1/{n}",
                    "content_type": None,
                    "size": None,
                    "sha256": None,
                    "filename": n,
                    "source_uri": None,
                    "url": None,
                    "status": "provider",
                    "reason": None,
                }
                for n in ("beach.jpg", "clip.3gp")
            ],
            "provider_message_id": "MMS_MO_pQ83xZk1",
            "occurred_at": datetime(2024, 5, 17, 22, 44, 2, tzinfo=UTC),
            "attributes": {"origin": "MMS_MO", "code": "N401", "raw.from": "14082257140"},
        },
    ),
    (
        "mms_mo_namespaced.xml",
        {"Content-Type": "Application/XML; charset=UTF-8"},
        {
            "owner": "+18885550199",
            "from": "+14082257140",
            "to": ["+18885550199"],
            "subject": 'Pizza 🍕 & "friends" <3',
            "provider_message_id": "MMS_MO_7fQk2LzX",
            "occurred_at": datetime(2024, 5, 17, 20, 3, 11, 250000, tzinfo=UTC),
            "attributes": {
                "origin": "MMS_MO",
                "code": "N401",
                "keyword": "PIZZA",
                "operator-id": "310260",
                "carrier.@country": "US",
                "carrier.name": "T-Mobile USA",
                "carrier.mcc": "310",
                "content.file-count": "2",
                "raw.owner": "18885550199",
                "raw.from": "+1 408 225 7140",
                "raw.to": '["18885550199"]',
            },
        },
    ),
    (
        "mms_mo_content_strings.json",
        {},
        {
            "owner": "+18885550199",
            "from": "+447700900123",
            "subject": None,
            "occurred_at": datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
            "attributes": {
                "origin": "MMS_MO",
                "code": "N401",
                "keyword": "",
                "operator-id": "23410",
                "carrier.name": "O2 UK",
                "carrier.mnc": "10",
            },
        },
    ),
    (
        "mms_mo_latin1.xml",
        {"Content-Type": "text/xml"},
        {
            "owner": "38100",
            "from": "+33612345678",
            "subject": "Café à la crème",
            "media": [],
            "occurred_at": datetime(2024, 3, 1, 8, 15, tzinfo=UTC),
        },
    ),
    (
        "mms_mo_bom.xml",
        {},
        {"event_id": event_id("sinch", "MMS_MO_iLnCRrL6"), "owner": "28444", "subject": None},
    ),
    (
        "mms_mo_utf16.xml",
        {"content-type": "text/xml; charset=utf-16"},
        {"event_id": event_id("sinch", "MMS_MO_iLnCRrL6"), "subject": "Здравствуйте 👋"},
    ),
]


@pytest.mark.parametrize(("name", "headers", "expected"), FILES, ids=[f[0] for f in FILES])
def test_payload_files(name: str, headers: dict[str, str], expected: dict[str, object]) -> None:
    [event] = translate(payload("sinch", name), headers)
    assert fields(event, *expected) == expected


def test_namespaced_xml_with_cdata_comments_and_whitespace() -> None:
    [event] = translate(payload("sinch", "mms_mo_namespaced.xml"), XML)
    assert event.media == [
        Media(f"{CONTENT}/MMS_MO_7fQk2LzX/pizza.jpg", filename="pizza.jpg", status="provider"),
        Media(
            f"{CONTENT}/MMS_MO_7fQk2LzX/text_0.txt?sig=a1&exp=171",
            filename="text_0.txt",
            status="provider",
        ),
    ]


def test_a_url_ending_in_a_slash_names_no_file() -> None:
    [event] = translate(payload("sinch", "mms_mo_content_strings.json"))
    assert [m.filename for m in event.media] == ["voice.amr", None]


MO_XML = payload("sinch", "mms_mo.xml")
MO_JSON = payload("sinch", "mms_mo.json")
HEADERS = [
    # (body, headers, the payload it must read as: the same record as with a plain header)
    pytest.param(
        MO_XML, {"Content-Type": "Application/XML; charset=UTF-8"}, XML, id="Application/XML"
    ),
    pytest.param(MO_XML, {"content-type": "text/xml"}, XML, id="text/xml"),
    pytest.param(MO_XML, {"CONTENT-TYPE": "TEXT/XML;charset=utf-8"}, XML, id="upper case"),
    pytest.param(MO_XML, {"Content-Type": " application/soap+xml "}, XML, id="+xml suffix"),
    pytest.param(b"\r\n\t " + MO_XML, {}, XML, id="xml sniffed after whitespace"),
    pytest.param(
        MO_XML, {"Content-Type": "application/x-www-form-urlencoded"}, XML, id="xml as form"
    ),
    pytest.param(MO_JSON, {"Content-Type": "application/json; charset=utf-8"}, JSON, id="json"),
    pytest.param(MO_JSON, {"Content-Type": "Application/JSON"}, JSON, id="Application/JSON"),
    pytest.param(MO_JSON, {"Content-Type": "application/vnd.sinch+json"}, JSON, id="+json suffix"),
    pytest.param(MO_JSON, {"Content-Type": "text/plain"}, JSON, id="json sniffed as text/plain"),
    pytest.param(b"\xef\xbb\xbf\n " + MO_JSON, {}, JSON, id="json sniffed after BOM"),
    pytest.param(b"\xef\xbb\xbf" + MO_JSON, JSON, JSON, id="json with BOM"),
]


@pytest.mark.parametrize(("body", "headers", "reads_as"), HEADERS)
def test_content_type_variations(
    body: bytes, headers: dict[str, str], reads_as: dict[str, str]
) -> None:
    reference = MO_XML if reads_as is XML else MO_JSON
    assert translate(body, headers) == translate(reference, reads_as)


def test_content_type_from_headers_when_the_callback_has_none() -> None:
    raw = Callback(MO_XML, {"content-type": "text/xml"}, RECEIVED_AT)
    [event] = PROVIDER.translate(raw, CTX)
    assert event.owner == "28444"


def test_twenty_files_in_either_form() -> None:
    urls = [f"{CONTENT}/MMS_MO_t1/part{i:02}.jpg" for i in range(20)]
    files = "".join(f"<file>{u}</file>" for u in urls)
    [from_xml] = translate(postback(f"<content>{files}</content>"), XML)
    [from_json] = translate(mo_json(content=[{"file": u} for u in urls]), JSON)
    want = [Media(u, filename=f"part{i:02}.jpg", status="provider") for i, u in enumerate(urls)]
    assert from_xml.media == from_json.media == want


def test_default_country_makes_bare_national_numbers_e164() -> None:
    body = postback("<from>4082257140</from>")
    [event] = translate(body, XML, TranslateContext(default_country="US"))
    assert (event.from_, event.attributes["raw.from"]) == ("+14082257140", "4082257140")
    assert event.owner == "28444"


UGLY = [
    pytest.param(postback(), XML, {"media": [], "from": None, "occurred_at": None}, id="minimal"),
    pytest.param(postback("<content/>"), XML, {"media": []}, id="empty content"),
    pytest.param(
        postback("<content>\n  <!-- none -->\n</content>", "<message-subject>  </message-subject>"),
        XML,
        {"media": [], "subject": None},
        id="content with only a comment, blank subject",
    ),
    pytest.param(
        postback("<content><file/><file>  </file><file>https://x.example/a.gif</file></content>"),
        XML,
        {"media": [Media("https://x.example/a.gif", filename="a.gif", status="provider")]},
        id="empty file elements are skipped",
    ),
    pytest.param(
        postback(
            '<content><file type="image/png" size="812">https://x.example/b.png</file></content>'
        ),
        XML,
        {
            "media": [Media("https://x.example/b.png", filename="b.png", status="provider")],
            "attributes": {"content.0.@type": "image/png", "content.0.@size": "812"},
        },
        id="XML attributes on a file are kept",
    ),
    pytest.param(
        '<s:postback xmlns:s="urn:sinch:mms"><s:origin>MMS_MO</s:origin>'
        "<s:tracking-id>MMS_MO_t1</s:tracking-id><s:to>28444</s:to>"
        '<t:from xmlns:t="urn:other">+14082257140</t:from></s:postback>',
        XML,
        {"owner": "28444", "from": "+14082257140"},
        id="prefixed namespaces match on local names",
    ),
    pytest.param(
        '<postback xmlns="urn:example sinch">' + REQUIRED + "</postback>",
        XML,
        {"owner": "28444"},
        id="namespace name with a space (not expat's separator)",
    ),
    pytest.param(
        postback("<message-subject>&#x1F600; caf&#233; &amp; more</message-subject>"),
        XML,
        {"subject": "😀 café & more"},
        id="character references",
    ),
    pytest.param(
        postback("<message-subject><![CDATA[  <b>bold</b> ]]></message-subject>"),
        XML,
        {"subject": "<b>bold</b>"},
        id="CDATA markup is text",
    ),
    pytest.param(
        '<postback version="2">' + REQUIRED + "stray<tag>a</tag><tag>b</tag><x><y/></x></postback>",
        XML,
        {"attributes": {"@version": "2", "#text": "stray", "tag": '["a","b"]', "x.y": ""}},
        id="unknown elements, XML attributes, repeats and stray text are kept",
    ),
    pytest.param(
        '<postback><origin v="2">MMS_MO</origin><tracking-id>MMS_MO_t1</tracking-id>'
        '<to type="shortcode"> 28444 </to><carrier country="US">T-Mobile</carrier></postback>',
        XML,
        {
            "owner": "28444",
            "attributes": {
                "origin.@v": "2",
                "to.@type": "shortcode",
                "carrier": "T-Mobile",
                "carrier.@country": "US",
                "origin": "MMS_MO",
            },
        },
        id="XML attributes on field elements are kept beside the field",
    ),
    pytest.param(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<?proc x?>\n'
        + postback("<timestamp> 2024-05-17T18:44:02Z </timestamp>"),
        XML,
        {"occurred_at": datetime(2024, 5, 17, 18, 44, 2, tzinfo=UTC)},
        id="declaration, processing instruction, padded timestamp",
    ),
    pytest.param(
        mo_json(**{"from": "+14082257140"}, message_subject="Ünïcödé ✓ 🎉"),
        JSON,
        {"from": "+14082257140", "subject": "Ünïcödé ✓ 🎉", "attributes": {"raw.from": None}},
        id="from with plus needs no raw copy",
    ),
    pytest.param(
        mo_json(content=[{"file": "https://x.example/c.mp4", "content-type": "video/mp4"}]),
        JSON,
        {
            "media": [Media("https://x.example/c.mp4", filename="c.mp4", status="provider")],
            "attributes": {"content.0.content-type": "video/mp4"},
        },
        id="extra keys on a JSON file are kept",
    ),
    pytest.param(mo_json(content=None), JSON, {"media": []}, id="content null"),
    pytest.param(mo_json(content=[]), JSON, {"media": []}, id="content empty"),
    pytest.param(
        mo_json(operator_id=31002, keyword=None, message_subject=None),
        JSON,
        {"subject": None, "attributes": {"operator-id": "31002", "keyword": None}},
        id="numeric operator-id, nulls",
    ),
    pytest.param(
        mo_json(to="+19195550123", tracking_id=9876543210),
        JSON,
        {"owner": "+19195550123", "provider_message_id": "9876543210"},
        id="10DLC with plus, numeric tracking-id",
    ),
]


@pytest.mark.parametrize(("body", "headers", "expected"), UGLY)
def test_ugly_payloads(body: str, headers: dict[str, str], expected: dict[str, Any]) -> None:
    [event] = translate(body, headers)
    plain = {k: v for k, v in expected.items() if k not in ("attributes", "media")}
    assert fields(event, *plain) == plain
    if "media" in expected:
        assert event.media == expected["media"]
    # Only the attributes named are checked; None means "must not be there".
    for key, value in expected.get("attributes", {}).items():
        assert event.attributes.get(key) == value, key


def deep_xml(levels: int) -> str:
    return postback("<x>" * levels + "</x>" * levels)


REFUSED = [
    pytest.param(payload("sinch", "xxe.xml"), XML, "xml_doctype_forbidden", id="XXE"),
    pytest.param(payload("sinch", "billion_laughs.xml"), XML, "xml_doctype_forbidden", id="lol"),
    pytest.param(
        payload("sinch", "billion_laughs.xml")
        .decode()
        .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
        .encode("utf-16"),
        XML,
        "xml_doctype_forbidden",
        id="billion laughs in UTF-16",
    ),
    pytest.param(payload("sinch", "external_dtd.xml"), {}, "xml_doctype_forbidden", id="ext DTD"),
    pytest.param("<!DOCTYPE postback>" + postback(), XML, "xml_doctype_forbidden", id="bare DTD"),
    pytest.param(postback("<keyword>&ent;</keyword>"), XML, "invalid_xml", id="undefined entity"),
    pytest.param(postback("<s:keyword>k</s:keyword>"), XML, "invalid_xml", id="undeclared prefix"),
    pytest.param(
        # A lone high surrogate where "K" was: expat alone would pair it with the "<" after it.
        postback("<keyword>K</keyword>").encode("utf-16").replace(b"K\0", b"\0\xd8"),
        XML,
        "invalid_xml",
        id="UTF-16 with a lone surrogate",
    ),
    pytest.param(MO_XML[:-20], XML, "invalid_xml", id="truncated XML"),
    pytest.param(postback() + "<postback/>", XML, "invalid_xml", id="two documents"),
    pytest.param(b"", XML, "invalid_xml", id="empty body as XML"),
    pytest.param(MO_JSON, XML, "invalid_xml", id="JSON body labelled XML"),
    pytest.param(MO_XML, JSON, "invalid_json", id="XML body labelled JSON"),
    pytest.param(MO_JSON[:-5], JSON, "invalid_json", id="truncated JSON"),
    pytest.param(b"", {}, "unsupported_media_type", id="empty body"),
    pytest.param(b"origin=MMS_MO&to=28444", {}, "unsupported_media_type", id="form body"),
    pytest.param(b"[1]", {}, "unsupported_media_type", id="JSON array sniffed"),
    pytest.param(b"[1]", JSON, "invalid_event", id="JSON array"),
    pytest.param(b"<response><origin>MMS_MO</origin></response>", XML, "invalid_event", id="root"),
    pytest.param(deep_xml(40), XML, "xml_too_deep", id="deep XML"),
    pytest.param(b"{" + b'"a":{' * 40 + b"}" * 41, JSON, "json_too_deep", id="deep JSON"),
    pytest.param(
        postback().replace("MMS_MO<", "MMS_MT_DR<"),
        XML,
        "unknown_event_type",
        id="delivery report origin",
    ),
    pytest.param(mo_json(origin="mms_mo"), JSON, "unknown_event_type", id="origin lower case"),
    pytest.param(mo_json(origin=None), JSON, "missing_field", id="no origin"),
    pytest.param(mo_json(tracking_id=""), JSON, "missing_field", id="empty tracking-id"),
    pytest.param(
        "<postback><origin>MMS_MO</origin><to>28444</to></postback>",
        XML,
        "missing_field",
        id="no tracking-id",
    ),
    pytest.param(mo_json(to=None), JSON, "missing_field", id="no to"),
    pytest.param(postback("<to>28445</to>"), XML, "invalid_field", id="two to elements"),
    pytest.param(
        "<postback><origin>MMS_MO</origin><tracking-id>t</tracking-id><to><n>1</n></to></postback>",
        XML,
        "invalid_field",
        id="to with children",
    ),
    pytest.param(mo_json(to=["28444"]), JSON, "invalid_field", id="to as a list"),
    pytest.param(mo_json(content=5), JSON, "invalid_field", id="content a number"),
    pytest.param(mo_json(content=[["u"]]), JSON, "invalid_field", id="content nested list"),
    pytest.param(mo_json(content=[{"file": 1.5}]), JSON, "invalid_field", id="file a float"),
    pytest.param(mo_json(timestamp="03/02/2014 11:19"), JSON, "invalid_time", id="bad timestamp"),
    pytest.param(
        postback("<timestamp>0001-01-01T00:00:00+01:00</timestamp>"),
        XML,
        "invalid_time",
        id="timestamp before datetime's range",
    ),
]


@pytest.mark.parametrize(("body", "headers", "code"), REFUSED)
def test_refusals_name_the_problem(body: bytes | str, headers: dict[str, str], code: str) -> None:
    with pytest.raises(Refusal) as info:
        translate(body, headers)
    assert info.value.code == code
    assert "root:" not in info.value.detail  # nothing from /etc/passwd, ever
    reply = PROVIDER.refused(info.value)
    # Sinch retries only 5xx and 429: a 400 is final, as a malformed postback should be.
    assert reply.status == 400
    assert code.encode() in reply.body


def refusal(body: bytes | str, headers: dict[str, str] = XML) -> Refusal:
    with pytest.raises(Refusal) as info:
        translate(body, headers)
    return info.value


def test_300k_files_are_refused_at_the_first_past_the_media_budget() -> None:
    # b25f525 translated all 300,000 (10.8 MB) in 2.4 s into one huge record; now 7 ms.
    body = postback("<content>" + "<file>https://x.example/a.jpg</file>" * 300_000 + "</content>")
    refused = refusal(body)
    assert (refused.code, refused.status) == ("too_many_media", 413)
    # Refused while parsing, not after: cut in half (no longer well-formed XML), the body is
    # still too_many_media rather than invalid_xml, so the parser never read as far as the cut.
    assert refusal(body[: len(body) // 2]).code == "too_many_media"


def test_media_budget_edge_in_either_form() -> None:
    budget = CTX.limits.max_media
    urls = [f"{CONTENT}/MMS_MO_t1/part{i}.jpg" for i in range(budget + 1)]

    def as_xml(files: list[str]) -> str:
        return postback("<content>" + "".join(f"<file>{u}</file>" for u in files) + "</content>")

    for at_budget in (as_xml(urls[:budget]), mo_json(content=urls[:budget])):
        [event] = translate(at_budget)
        assert [m.uri for m in event.media] == urls[:budget]
    for over in (as_xml(urls), mo_json(content=urls)):
        refused = refusal(over, {})
        assert (refused.code, refused.status) == ("too_many_media", 413)


def with_elements(count: int, attributes: int = 0) -> str:
    """A postback of `count` elements (it and its three required fields included)."""
    attrs = "".join(f' a{i}="v"' for i in range(attributes))
    return f"<postback{attrs}>{REQUIRED}" + "<x/>" * (count - 4) + "</postback>"


def test_element_budget_edge_counts_elements_and_attributes() -> None:
    budget = CTX.limits.max_elements
    [event] = translate(with_elements(budget), XML)
    assert json.loads(event.attributes["x"]) == [""] * (budget - 4)
    [event] = translate(with_elements(budget - 1, attributes=1), XML)
    assert event.attributes["@a0"] == "v"
    for over in (with_elements(budget + 1), with_elements(budget - 1, attributes=2)):
        refused = refusal(over)
        assert (refused.code, refused.status) == ("too_many_elements", 413)


def test_attributes_and_namespace_declarations_past_the_budget_are_refused_unread() -> None:
    # Expat reads a start tag whole before reporting it, and namespace declarations reach no
    # handler at all: 1.1 M attributes took 2.7 s, 500,000 declarations 0.9 s (and passed).
    over = CTX.limits.max_elements + 1
    attributes = " ".join(f'a{i}="v"' for i in range(over))
    declarations = " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(over))
    for start_tag in (f"<postback {attributes}>", f"<postback {declarations}>"):
        refused = refusal(f"{start_tag}{REQUIRED}</postback>")
        assert (refused.code, refused.status) == ("too_many_elements", 413)


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_distinct_element_names_do_not_accumulate_across_callbacks() -> None:
    # lxml (b25f525) kept every element name in a per-thread dictionary that is never freed:
    # these 300 callbacks grew RSS by ~140 MB, and after 545 of them every later postback was
    # refused as invalid_xml. An expat parser, and the names it read, last one document.
    pad = "n" * 115  # names of ~125 characters, under MAX_NAME_CHARS
    before = rss_bytes()
    for i in range(300):
        # 1,000 names never seen before: 125 KB per callback, 37 MB in all.
        [event] = translate(postback(*(f"<x{i}_{j}{pad}/>" for j in range(1000))), XML)
        assert len(event.attributes) == 1001  # the 1,000 names and origin
    assert rss_bytes() - before < 16 * 2**20
    # Postbacks naming elements never seen before still parse.
    [event] = translate(payload("sinch", "mms_mo_namespaced.xml"), XML)
    assert event.attributes["carrier.mcc"] == "310"


def test_unknown_declared_encoding_is_refused_without_growing_the_codec_cache() -> None:
    cached = set(encodings._cache)
    for _ in range(100):
        name = f"x-{uuid.uuid4().hex}"
        refused = refusal(f'<?xml version="1.0" encoding="{name}"?>{postback()}')
        assert (refused.code, refused.status) == ("unsupported_encoding", 400)
        assert name in refused.detail
    assert set(encodings._cache) == cached


@pytest.mark.parametrize(
    ("encoding", "subject"),
    [("UTF-8", "Ünïcödé ✓"), ("latin1", "café"), ("US-ASCII", "cafe"), ("windows-1252", "€ café"),
     ("ISO-8859-15", "€ œuvre"), ("Shift_JIS", "東京タワー"), ("GB18030", "你好 🎉")],
)  # fmt: skip
def test_declared_encodings_expat_or_python_decodes(encoding: str, subject: str) -> None:
    declared = f'<?xml version="1.0" encoding="{encoding}"?>'
    body = (declared + postback(f"<message-subject>{subject}</message-subject>")).encode(encoding)
    [event] = translate(body, XML)
    assert event.subject == subject
