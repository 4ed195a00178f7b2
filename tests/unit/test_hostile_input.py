"""Hostile input to the pure translators (issue 9): caches stay bounded, numbers stay exact,
charsets are real ones, names and URIs stay safe, details are cut. Each case failed on the code
before the fix (commit b25f525). The providers' own hostile refusals are rows of their tables
(tests/unit/test_<module>.py), the budgets are checked for every provider in test_providers.py.
"""

from __future__ import annotations

import encodings
import json
import sys

import orjson
import pytest

from connector.providers.contract import Refusal
from connector.providers.fields import _normalize_number, decode_text, normalize_number, parse_json
from tests import harness
from tests.helpers import payload

BW2_EVENT = orjson.loads(payload("bandwidth_v2", "message_received_mms.json"))[0]
JSON = {"Content-Type": "application/json"}


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
    [event] = harness.Translator("bandwidth-v2")(body, JSON)
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


def test_attacker_charset_names_are_never_looked_up() -> None:
    cache: dict[str, object] = encodings._cache  # type: ignore[attr-defined]
    before = len(cache)
    for i in range(500):
        decode_text(b"hi", f"x-charset-{i}")
    assert len(cache) == before


URL_CASES = [
    ("https://m.example/a/%2e%2e%2fetc%2fpasswd", "https://m.example/a/%2e%2e%2fetc%2fpasswd",
     "passwd"),
    ("https://m.example/a%00b%0d%0a.jpg", "https://m.example/a%00b%0d%0a.jpg", "ab.jpg"),
    ("javascript:alert(1)", None, None),
    ("data:image/png;base64,AAAA", None, None),
    ("file:///var/lib/mms-connector/media/ab/abcd", None, None),
    ("HTTPS://M.EXAMPLE/x.jpg", "HTTPS://M.EXAMPLE/x.jpg", "x.jpg"),
]  # fmt: skip


# Where each provider's JSON payload names its media, and how.
MEDIA_AT = {
    "bandwidth-v2": ("message_received_mms.json", "0.message.media", lambda url: [url]),
    "bandwidth-v1": ("inbound_mms.json", "media", lambda url: [url]),
    "sinch": ("mms_mo.json", "content", lambda url: [{"file": url}]),
}


@pytest.mark.parametrize("provider", sorted(MEDIA_AT))
@pytest.mark.parametrize(("url", "uri", "filename"), URL_CASES)
def test_provider_media_uris_are_http_only_and_names_safe(
    provider: str, url: str, uri: str | None, filename: str | None
) -> None:
    file, path, media = MEDIA_AT[provider]
    body = harness.variant(harness.module_of(provider), file, {path: media(url)})
    [event] = harness.Translator(provider)(body, JSON)
    if uri is None:
        assert event.media == []
        refused = json.loads(event.attributes["media.0.refused"])
        assert refused == {"code": "unsupported_media_uri", "uri": url}
    else:
        assert [(m.uri, m.filename) for m in event.media] == [(uri, filename)]


def test_refusal_details_are_cut() -> None:
    body = orjson.dumps([{**BW2_EVENT, "type": "x" * 900_000}])
    refusal = harness.Translator("bandwidth-v2").refusal(body, JSON)
    assert refusal.code == "unknown_event_type"
    assert len(refusal.detail) < 400
    assert sys.getsizeof(str(refusal)) < 1000


def test_more_strings_than_the_budget_allows_are_refused_unstripped() -> None:
    with pytest.raises(Refusal) as info:
        parse_json(b'{"a":' * 30_000 + b"1" + b"}" * 30_000, max_elements=10_000)
    assert info.value.code == "too_many_elements"
