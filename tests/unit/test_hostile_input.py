"""Hostile input to the pure translators (issue 9): every parser refuses past its budget, caches
stay bounded, ids stay unambiguous, names and URIs stay safe. Each case failed on the code
before the fix (commit b25f525)."""

from __future__ import annotations

import base64
import encodings
import json
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from connector.callback import Limits, Refusal, TranslateContext
from connector.media import FilesystemMediaStore
from connector.parsing import _normalize_number, decode_text, normalize_number, parse_json
from connector.providers import PROVIDERS
from tests.helpers import callback, payload

BW2_EVENT = orjson.loads(payload("bandwidth_v2", "message_received_mms.json"))[0]
BW1_EVENT = orjson.loads(payload("bandwidth_v1", "inbound_mms.json"))
JSON = {"Content-Type": "application/json"}
MULTIPART = {"Content-Type": "multipart/mixed; boundary=b"}


def bw2(**message: object) -> bytes:
    return orjson.dumps([{**BW2_EVENT, "message": {**BW2_EVENT["message"], **message}}])


def bw1(**fields: object) -> bytes:
    return orjson.dumps({**BW1_EVENT, **fields})


def sinch_json(**fields: object) -> bytes:
    return orjson.dumps({**orjson.loads(payload("sinch", "mms_mo.json")), **fields})


def om_mo(*parts: bytes, **details: object) -> bytes:
    data = {"type": "MO", "moId": 42, "source": "447800000001", "destinations": ["88600"]}
    head = b"--b\r\nContent-Type: application/json\r\nContent-Id: main\r\n\r\n"
    body = head + json.dumps({**data, **details}).encode()
    for part in parts:
        body += b"\r\n--b\r\n" + part
    return body + b"\r\n--b--\r\n"


def text_part(charset: str, content: bytes) -> bytes:
    return f"Content-Type: text/plain; charset={charset}\r\n\r\n".encode() + content


def image_part(headers: str) -> bytes:
    return f"Content-Type: image/png\r\n{headers}\r\n\r\n".encode() + base64.b64encode(b"png")


@pytest.fixture
def ctx(tmp_path: Path) -> TranslateContext:
    return TranslateContext(media_store=FilesystemMediaStore(tmp_path / "media"))


def translate(provider: str, body: bytes, headers: dict[str, str], ctx: TranslateContext) -> list:
    return PROVIDERS[provider].translate(callback(body, headers), ctx)


# (provider, body, headers, refusal code): each over one budget, or otherwise hostile.
REFUSED = [
    pytest.param(
        "bandwidth-v2", b"[" + b"{}," * 3_000_000 + b"{}]", JSON, "too_many_elements",
        id="10 MB of [{},{},...] refused before parsing",
    ),
    pytest.param(
        "bandwidth-v2", orjson.dumps([BW2_EVENT] * 101), JSON, "too_many_events",
        id="one event past the events budget",
    ),
    pytest.param(
        "bandwidth-v2", bw2(media=["https://m.example/a.jpg"] * 51), JSON, "too_many_media",
        id="one medium past the media budget",
    ),
    pytest.param(
        "bandwidth-v2", bw2(to=["+15555550100"] * 101), JSON, "too_many_recipients",
        id="100,000 recipients made a record Kafka refused (here: 101)",
    ),
    pytest.param(
        "bandwidth-v2", bw2(id="m-1\x1fx"), JSON, "invalid_id",
        id="a unit separator in an id could collide with another event's id",
    ),
    pytest.param("bandwidth-v2", bw2(owner=" "), JSON, "missing_field", id="blank owner"),
    pytest.param(
        "bandwidth-v1", bw1(to=" ", direction="in"), JSON, "missing_field", id="v1 blank owner"
    ),
    pytest.param("bandwidth-v1", bw1(messageId="m\x00"), JSON, "invalid_id", id="v1 NUL in id"),
    pytest.param(
        "bandwidth-v1", b'{"a":[' + b'"x",' * 20_000 + b'"x"]}', JSON, "too_many_elements",
        id="v1 many values in one array",
    ),
    pytest.param("sinch", sinch_json(to="  "), JSON, "missing_field", id="sinch blank owner"),
    pytest.param(
        "sinch", sinch_json(**{"tracking-id": "t\x1e1"}), JSON, "invalid_id",
        id="sinch record separator in id",
    ),
    pytest.param(
        "openmarket", om_mo(moId="1\x1f2"), MULTIPART, "invalid_id", id="openmarket id"
    ),
    pytest.param(
        "openmarket", om_mo(ccs=["+447700900123"] * 100), MULTIPART, "too_many_recipients",
        id="openmarket recipients, cc included",
    ),
    pytest.param(
        "openmarket", b"-" * 10_000_000, {"Content-Type": "multipart/mixed; boundary=-"},
        "no_parts", id="1-character boundary over 10 MB of dashes",
    ),
    pytest.param(
        "openmarket", b"\n----x" * 2_000_000, {"Content-Type": "multipart/mixed; boundary=-"},
        "invalid_multipart", id="10 MB of lines that look like delimiters",
    ),
    pytest.param(
        "openmarket", om_mo(), {"Content-Type": "multipart/mixed; boundary=" + "b" * 71},
        "invalid_boundary", id="boundary longer than RFC 2046's 70 characters",
    ),
    pytest.param(
        "openmarket", om_mo(), {"Content-Type": 'multipart/mixed; boundary="b<>"'},
        "invalid_boundary", id="boundary outside RFC 2046's characters",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "body", "headers", "code"), REFUSED)
def test_refused(
    provider: str, body: bytes, headers: dict[str, str], code: str, ctx: TranslateContext
) -> None:
    with pytest.raises(Refusal) as info:
        translate(provider, body, headers, ctx)
    assert info.value.code == code
    assert len(info.value.detail) < 400  # echoed values are cut


def test_budgets_are_inclusive(ctx: TranslateContext) -> None:
    limits = Limits(max_events=3, max_media=2, max_recipients=2)
    small = TranslateContext(limits=limits, media_store=ctx.media_store)
    media = ["https://m.example/a.jpg", "https://m.example/b.jpg"]
    body = orjson.dumps([orjson.loads(bw2(media=media, to=["+15555550100"]))[0]] * 3)
    assert len(translate("bandwidth-v2", body, JSON, small)) == 3


def test_commas_and_brackets_inside_strings_are_text_not_values() -> None:
    text = "{[,]}" * 5_000  # 25,000 brackets and commas, all inside one string
    assert parse_json(orjson.dumps({"text": text}), max_elements=100) == {"text": text}


def test_integers_past_64_bits_stay_exact() -> None:
    body = b'{"a": 123456789012345678901234567890, "b": -9223372036854775809, "c": 1.5}'
    assert parse_json(body) == {
        "a": 123456789012345678901234567890,
        "b": -9223372036854775809,
        "c": 1.5,
    }
    # In attributes the digits survive too (they were "2e+25").
    body = orjson.dumps([{**BW2_EVENT, "big": 1}]).replace(b'"big":1', b'"big":2' + b"0" * 25)
    [event] = translate("bandwidth-v2", body, JSON, TranslateContext())
    assert event.attributes["big"] == "2" + "0" * 25


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"[NaN]", "invalid_json"), (b'["\xff", 1234567890123456789012]', "invalid_json")],
)
def test_the_exact_reader_refuses_what_orjson_refuses(body: bytes, code: str) -> None:
    with pytest.raises(Refusal) as info:
        parse_json(body)
    assert info.value.code == code


def test_long_numbers_bypass_the_number_cache() -> None:
    _normalize_number.cache_clear()
    for i in range(40):
        assert normalize_number(f"{i}" + "5" * 100_000, None).startswith(str(i))
    assert _normalize_number.cache_info().currsize == 0
    assert normalize_number("+1 919 555 1000", None) == "+19195551000"
    assert _normalize_number.cache_info().currsize == 1


@pytest.mark.parametrize(
    ("charset", "content", "text"),
    [
        ("utf-7", b"+2D3cAA-", "\ufffd\ufffd"),  # a lone surrogate pair half, as utf-7 gives
        ("unicode_escape", b"\\ud800 x", "\\ud800 x"),  # not a charset: read as UTF-8
        ("raw_unicode_escape", b"\\ud800", "\\ud800"),
        ("base64_codec", b"aGk=", "aGk="),
        ("latin-1", b"caf\xe9", "café"),
        ("Shift_JIS", "日本".encode("shift_jis"), "日本"),
        ("x" * 5000, b"hi", "hi"),
    ],
)
def test_text_is_decoded_with_real_text_codecs_only(
    charset: str, content: bytes, text: str
) -> None:
    decoded = decode_text(content, charset)
    decoded.encode("utf-8")  # no lone surrogate: every Avro string must hold it
    if charset != "utf-7":
        assert decoded == text


def test_utf7_text_part_gives_an_encodable_record(ctx: TranslateContext) -> None:
    [event] = translate("openmarket", om_mo(text_part("utf-7", b"+2D3cAA-")), MULTIPART, ctx)
    assert event.text is not None
    event.text.encode("utf-8")


def test_attacker_charset_names_are_never_looked_up() -> None:
    cache: dict[str, object] = encodings._cache  # type: ignore[attr-defined]
    before = len(cache)
    for i in range(500):
        decode_text(b"hi", f"x-charset-{i}")
    assert len(cache) == before


@pytest.mark.parametrize(
    ("headers", "filename", "raw"),
    [
        ('Content-Disposition: inline; filename="../../../etc/passwd"', "passwd",
         "../../../etc/passwd"),
        ("Content-Id: </etc/cron.d/x>", "x", "/etc/cron.d/x"),
        ("Content-Id: <C:\\Users\\x.png>", "x.png", "C:\\Users\\x.png"),
        ('Content-Disposition: inline; filename="a\x00b\x07.png"', "ab.png", "a\x00b\x07.png"),
        ("Content-Disposition: attachment; filename*=UTF-8''%e2%82%ac%20rates.png",
         "€ rates.png", None),
        ("Content-Disposition: attachment; filename=\"fallback.png\"; "
         "filename*=utf-8'en'na%C3%AFve.png", "naïve.png", None),
        ("Content-Id: <..>", None, ".."),
        ("Content-Id: <" + "n" * 300 + ".png>", "n" * 255, "n" * 300 + ".png"),
    ],
)  # fmt: skip
def test_inline_media_names_are_safe(
    headers: str, filename: str | None, raw: str | None, ctx: TranslateContext
) -> None:
    [event] = translate("openmarket", om_mo(image_part(headers)), MULTIPART, ctx)
    assert event.media[0].filename == filename
    assert event.attributes.get("media.0.filename") == raw


def test_a_huge_part_header_line_is_not_a_header(ctx: TranslateContext) -> None:
    part = image_part("Content-Id: <" + "n" * 9_000_000 + ">")
    try:
        events = translate("openmarket", om_mo(part), MULTIPART, ctx)
    except Refusal:
        return  # refused: fine, as long as nothing of it became a 9 MB name or attribute
    assert all(len(m.filename or "") <= 255 for m in events[0].media)
    assert all(len(v) < 10_000 for v in events[0].attributes.values())


URL_CASES = [
    ("https://m.example/a/%2e%2e%2fetc%2fpasswd", "https://m.example/a/%2e%2e%2fetc%2fpasswd",
     "passwd"),
    ("https://m.example/a%00b%0d%0a.jpg", "https://m.example/a%00b%0d%0a.jpg", "ab.jpg"),
    ("javascript:alert(1)", None, None),
    ("data:image/png;base64,AAAA", None, None),
    ("file:///var/lib/mms-connector/media/ab/abcd", None, None),
    ("HTTPS://M.EXAMPLE/x.jpg", "HTTPS://M.EXAMPLE/x.jpg", "x.jpg"),
]  # fmt: skip


def _bw2_media(url: str) -> bytes:
    return bw2(media=[url])


def _bw1_media(url: str) -> bytes:
    return bw1(media=[url])


def _sinch_media(url: str) -> bytes:
    return sinch_json(content=[{"file": url}])


@pytest.mark.parametrize("build", [_bw2_media, _bw1_media, _sinch_media])
@pytest.mark.parametrize(("url", "uri", "filename"), URL_CASES)
def test_provider_media_uris_are_http_only_and_names_safe(
    build: Callable[[str], bytes], url: str, uri: str | None, filename: str | None
) -> None:
    provider = {_bw2_media: "bandwidth-v2", _bw1_media: "bandwidth-v1"}.get(build, "sinch")
    [event] = translate(provider, build(url), JSON, TranslateContext())
    if uri is None:
        assert event.media == []
        refused = json.loads(event.attributes["media.0.refused"])
        assert refused == {"code": "unsupported_media_uri", "uri": url}
    else:
        assert [(m.uri, m.filename) for m in event.media] == [(uri, filename)]


def test_refusal_details_are_cut() -> None:
    body = orjson.dumps([{**BW2_EVENT, "type": "x" * 900_000}])
    with pytest.raises(Refusal) as info:
        translate("bandwidth-v2", body, JSON, TranslateContext())
    assert info.value.code == "unknown_event_type"
    assert len(info.value.detail) < 400
    assert sys.getsizeof(str(info.value)) < 1000


@pytest.mark.parametrize(
    "xml",
    [
        b"<postback><" + b"n" * 129 + b">x</" + b"n" * 129 + b"></postback>",
        b"<postback><to a" + b"n" * 129 + b'="1">28444</to></postback>',
    ],
)
def test_long_xml_names_are_refused_at_the_first(xml: bytes) -> None:
    with pytest.raises(Refusal) as info:
        translate("sinch", xml, {"Content-Type": "application/xml"}, TranslateContext())
    assert (info.value.code, info.value.status) == ("name_too_long", 413)


def test_more_strings_than_the_budget_allows_are_refused_unstripped() -> None:
    with pytest.raises(Refusal) as info:
        parse_json(b'{"a":' * 30_000 + b"1" + b"}" * 30_000, max_elements=10_000)
    assert info.value.code == "too_many_elements"
