"""OpenMarket callbacks to canonical records, MO multipart bodies and JSON delivery reports: the
table (tests/harness.py runs it), golden records beside the payloads in tests/payloads/openmarket/.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from connector.providers import PROVIDERS
from connector.providers.contract import Refusal, Reply
from connector.providers.openmarket import NAME, PROVIDER, mime
from connector.record import event_id
from tests import harness
from tests.harness import ABSENT, Case, including, stored
from tests.helpers import callback, payload

MODULE = harness.module_of(NAME)
JPEG = payload(MODULE, "pixel.jpg")
PNG = payload(MODULE, "dot.png")
DOC = payload(MODULE, "mo_doc_example.txt")
REQUEST_ID = "015-3DD6C366-D68A-4A02-9777-19CBC8AB40C1"
# The docs' header as drawn, trailing space included.
DOC_CONTENT_TYPE = "multipart/mixed; boundary=mimeboundary "
DOC_HEADERS = {"Content-Type": DOC_CONTENT_TYPE, "X-Request-Id": REQUEST_ID}
JSON_HEADERS = {"Content-Type": "application/json", "X-Request-Id": REQUEST_ID}
JSON = {"Content-Type": "application/json"}
MIXED = {"Content-Type": "multipart/mixed; boundary=b"}
MO = {"type": "MO", "moId": 1, "source": "447800000001", "destinations": ["88600"]}
IMAGE = b"Content-Type: image/jpeg\r\nContent-Id: a.jpg\r\n\r\n" + base64.b64encode(JPEG)
BASE64_JPEG = b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"
TEXT = b"Content-Type: text/plain\r\n\r\nx"


def mo_body(*parts: bytes, details: dict[str, object] | None = None) -> bytes:
    """A CRLF multipart MO: a JSON first part, then `parts` (headers, blank line, body)."""
    data = details or {**MO, "moId": 42, "date": "2024-06-01T10:00:00Z"}
    # The standard library writes integers past 64 bits, which orjson refuses.
    json_part = (
        b"Content-Type: application/json\r\nContent-Id: main\r\n\r\n" + json.dumps(data).encode()
    )
    return b"".join(b"--b\r\n" + p + b"\r\n" for p in (json_part, *parts)) + b"--b--\r\n"


# The Content-Type each MO payload file comes with.
MO_FILES = {
    "mo_crlf_preamble.eml": 'multipart/mixed; boundary="----=_Part_4421_1871.1718031234"',
    "mo_several_images.eml": "Multipart/Mixed; BOUNDARY=b1; type=application/json",
    "mo_lf_unterminated.txt": "multipart/mixed; boundary=x",
}


def mo_file(label: str, file: str) -> Case:
    return Case(label, file=file, headers={"Content-Type": MO_FILES[file]}, golden=True)


def _mo(**changes: object) -> dict[str, object]:
    return {k: v for k, v in {**MO, **changes}.items() if v is not None}


def _standard_form(body: bytes) -> bytes:
    """The docs' example as real MIME: a blank line after each part's headers."""
    for header in (b"Content-Id: main \n", b"Content-Id: image.jpg \n", b"Content-Id: text.txt \n"):
        body = body.replace(header, header + b"\n")
    return body


def doc_form(label: str, body: bytes, content_type: str = DOC_CONTENT_TYPE) -> Case:
    """A form of the docs' example that must give its very record."""
    headers = {"Content-Type": content_type, "X-Request-Id": REQUEST_ID}
    return Case(f"doc example {label}", body=body, headers=headers, golden="mo_doc_example")


def text_part(label: str, headers: bytes, body: bytes, text: str) -> Case:
    # Text parts are the text, not media.
    part = mo_body(headers + b"\r\n\r\n" + body)
    return Case(f"text part: {label}", body=part, headers=MIXED, fields={"text": text, "media": []})


def report(
    label: str, body: bytes, kind: str, error: tuple[str | None, str | None], **attributes: str
) -> Case:
    mt_id = json.loads(body)["mtId"]
    fields = {
        "event_type": kind,
        "direction": "outbound",
        "error_code": error[0],
        "error_description": error[1],
        "owner": mt_id,
        "provider_message_id": mt_id,
        **{"from": None, "to": [], "media": [], "text": None},
        "attributes": {**attributes, "header.x-request-id": REQUEST_ID},
    }
    return Case(f"report: {label}", body=body, headers=JSON_HEADERS, fields=fields)


def mo_id(value: int | str, expected: str) -> Case:
    details = {"type": "MO", "moId": value, "source": "447800000001", "destinations": ["88600"]}
    return Case(
        f"moId {value!r} kept exact",
        body=mo_body(details=details),
        headers=MIXED,
        # No date: tolerated.
        fields={
            "provider_message_id": expected,
            "event_id": event_id(NAME, "MO", expected),
            "occurred_at": None,
        },
    )


def named(headers: str, filename: str | None, raw: str | None) -> Case:
    """An inline image whose part headers name it: the name kept safe, the raw one beside it."""
    part = f"Content-Type: image/png\r\n{headers}\r\n\r\n".encode() + base64.b64encode(b"png")
    return Case(
        f"media name from {headers!r:.60}",
        body=mo_body(part, details=_mo(moId=42)),
        headers=MIXED,
        fields={
            "media": [stored(b"png", "image/png", filename)],
            "attributes": including({"media.0.filename": ABSENT if raw is None else raw}),
        },
    )


def refused(label: str, body: bytes, headers: dict[str, str], code: str, status: int = 400) -> Case:
    return Case(label, body=body, headers=headers, refused=(code, status))


TABLE = [
    Case("the docs' MO", file="mo_doc_example.txt", headers=DOC_HEADERS, golden=True),
    mo_file(
        "CRLF, preamble, quoted boundary, base64 UTF-8 text with emoji, epilogue",
        "mo_crlf_preamble.eml",
    ),
    # The JPEG comes twice and is stored once (content-addressed).
    mo_file(
        "several images, Content-Disposition and Content-Location names, two text parts",
        "mo_several_images.eml",
    ),
    mo_file(
        "LF only, header names in odd case, no closing delimiter, no Content-Id, no userAgent",
        "mo_lf_unterminated.txt",
    ),
    Case("the docs' report", file="report_rejected.json", headers=JSON_HEADERS, golden=True),
    # Delivered keeps the outcome as attributes.
    Case("a delivered report", file="report_delivered.json", headers=JSON_HEADERS, golden=True),
    doc_form("as drawn: LF, no blank line, trailing spaces", DOC),
    doc_form("as drawn with CRLF", DOC.replace(b"\n", b"\r\n")),
    doc_form("blank lines, LF", _standard_form(DOC)),
    doc_form("blank lines, CRLF", _standard_form(DOC).replace(b"\n", b"\r\n")),
    doc_form("preamble", b"This is a multi-part message in MIME format.\r\n\r\n" + DOC),
    doc_form("epilogue", DOC + b"\nepilogue --mimeboundary\n"),
    doc_form("no closing delimiter", DOC.removesuffix(b"--mimeboundary--\n")),
    doc_form("padding after delimiters", DOC.replace(b"--mimeboundary\n", b"--mimeboundary  \t\n")),
    doc_form("quoted boundary", DOC, 'multipart/mixed; boundary="mimeboundary"'),
    doc_form(
        "parameters in any case", DOC, "MULTIPART/MIXED;charset=utf-8;  Boundary = mimeboundary"
    ),
    doc_form(
        "part header names in any case",
        DOC.replace(b"Content-Type", b"content-type").replace(b"Content-Id", b"CONTENT-ID"),
    ),
    doc_form(
        "explicit base64",
        DOC.replace(
            b"Content-Id: image.jpg \n",
            b"Content-Id: image.jpg\nContent-Transfer-Encoding: base64\n",
        ),
    ),
    doc_form(
        "charset on text/plain",
        DOC.replace(b"Content-Type: text/plain\n", b'Content-Type: text/plain; charset="utf-8"\n'),
    ),
    doc_form(
        "indented JSON right after the headers",
        DOC.replace(b"Content-Id: main \n{", b"Content-Id: main\n  {"),
    ),
    *(
        Case(
            f"HTTP header case {i}",
            file="mo_doc_example.txt",
            headers=headers,
            golden="mo_doc_example",
        )
        for i, headers in enumerate(
            [
                {"content-type": DOC_CONTENT_TYPE, "x-request-id": REQUEST_ID},
                {"CONTENT-TYPE": DOC_CONTENT_TYPE, "X-REQUEST-ID": f" {REQUEST_ID} "},
                {"Content-type": DOC_CONTENT_TYPE, "X-Request-ID": REQUEST_ID},
            ]
        )
    ),
    Case(
        "no request id, no attribute",
        file="mo_doc_example.txt",
        headers={"Content-Type": DOC_CONTENT_TYPE},
        fields={"attributes": including({"header.x-request-id": ABSENT})},
    ),
    text_part("raw text", b"Content-Type: text/plain", b"Good game", "Good game"),
    text_part("raw word that is valid base64", b"Content-Type: text/plain", b"Good", "Good"),
    text_part("base64 without CTE", b"Content-Type: text/plain", b"T2theQ==", "Okay"),
    text_part(
        "7bit says raw",
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit",
        b"T2theQ==",
        "T2theQ==",
    ),
    text_part(
        "base64 UTF-8 with emoji sequences",
        b"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64",
        base64.encodebytes("Ünïcödé ✓ 👩‍👩‍👧 🎉".encode()),
        "Ünïcödé ✓ 👩‍👩‍👧 🎉",
    ),
    text_part(
        "base64 emoji without CTE",
        b"Content-Type: text/plain; charset=utf-8",
        base64.b64encode("Ünïcödé ✓ 👩‍👩‍👧 🎉".encode()),
        "Ünïcödé ✓ 👩‍👩‍👧 🎉",
    ),
    text_part(
        "raw UTF-8", b"Content-Type: text/plain; charset=utf-8", "raw ✓ 🎉".encode(), "raw ✓ 🎉"
    ),
    text_part(
        "quoted-printable",
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable",
        b"caf=C3=A9 au =\r\nlait",
        "café au lait",
    ),
    text_part(
        "latin-1",
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit",
        "café".encode("latin-1"),
        "café",
    ),
    text_part(
        "folded header",
        b"Content-Type: text/plain;\r\n\tcharset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit",
        "café".encode("latin-1"),
        "café",
    ),
    text_part(
        "base64 windows-1252 without CTE",
        b"Content-Type: text/plain; charset=windows-1252",
        base64.b64encode("“quoted” €5".encode("cp1252")),
        "“quoted” €5",
    ),
    text_part("bad UTF-8 replaced", b"Content-Type: text/plain", b"caf\xe9 ok", "caf\ufffd ok"),
    text_part(
        "unknown charset read as UTF-8",
        b"Content-Type: text/plain; charset=x-klingon",
        "héllo wörld".encode(),
        "héllo wörld",
    ),
    text_part(
        "header-like first line after a blank line is text",
        b"Content-Type: text/plain",
        b"Note: bring snacks\r\nsee you",
        "Note: bring snacks\r\nsee you",
    ),
    # utf-7 gives lone surrogate pair halves, which no record can hold: not decoded.
    text_part("utf-7", b"Content-Type: text/plain; charset=utf-7", b"+2D3cAA-", "+2D3cAA-"),
    Case(
        # The docs' form: no blank line; only Content-* lines are part headers there.
        "header-like body line without a blank line stays text",
        body=mo_body(
            b"Content-Type: text/plain\r\nContent-Id: text.txt\r\nNote: bring snacks\r\nbye"
        ),
        headers=MIXED,
        fields={"text": "Note: bring snacks\r\nbye"},
    ),
    Case(
        "a part without any headers is stored without a type",
        body=mo_body(b"\r\n" + base64.b64encode(JPEG)),
        headers=MIXED,
        fields={"media": [stored(JPEG, None, None)], "text": None},
    ),
    Case(
        "file names: disposition, then id, then location",
        body=mo_body(
            b"Content-Type: image/png\r\nContent-Id: <cid.png>\r\n"
            b'Content-Disposition: inline; filename="named.png"\r\n\r\n' + base64.b64encode(PNG),
            b"Content-Type: image/png\r\nContent-Location: http://mmsc.example/a/loc.png\r\n"
            b"Content-Id: <id.png>\r\n\r\n" + base64.b64encode(PNG),
            b"Content-Type: image/png\r\nContent-Location: loc.png\r\n\r\n" + base64.b64encode(PNG),
            b"Content-Type: image/png\r\nContent-Id: <f\xc3\xb6to.png>\r\n\r\n"
            + base64.b64encode(PNG),
        ),
        headers=MIXED,
        fields={
            "media": [
                stored(PNG, "image/png", n) for n in ("named.png", "id.png", "loc.png", "föto.png")
            ]
        },
    ),
    Case(
        "media order and types follow the body",
        body=mo_body(
            IMAGE,
            b"Content-Type: text/plain\r\n\r\nfirst",
            b"Content-Type: image/png; name=b.png\r\nContent-Id: b.png\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n" + PNG,
            b"Content-Type: text/plain\r\n\r\nsecond",
            b"Content-Type: text/x-vcard\r\nContent-Id: c.vcf\r\n\r\nBEGIN:VCARD\r\nEND:VCARD",
        ),
        headers=MIXED,
        fields={
            "text": "first\nsecond",
            "media": [
                stored(JPEG, "image/jpeg", "a.jpg"),
                stored(PNG, "image/png", "b.png"),
                stored(b"BEGIN:VCARD\r\nEND:VCARD", "text/x-vcard", "c.vcf"),
            ],
        },
    ),
    mo_id(18446744073709551615, "18446744073709551615"),  # largest id orjson keeps an int
    # Past 64 bits orjson gives a float; such bodies are read exactly instead.
    mo_id(123456789012345678901234567890, "123456789012345678901234567890"),
    mo_id(-9223372036854775809, "-9223372036854775809"),
    mo_id(123456789012345678, "123456789012345678"),
    mo_id("00123", "00123"),
    Case(
        "default country reads national numbers",
        body=mo_body(
            details={"type": "mo", "moId": 1, "source": "7045551234", "destinations": "9195550002"}
        ),
        headers=MIXED,
        settings={"default_country": "US"},
        # raw.owner, raw.from and raw.to: test_providers.py
        fields={"owner": "+19195550002", "from": "+17045551234", "to": ["+19195550002"]},
    ),
    Case(
        "unknown JSON fields kept in attributes",
        body=mo_body(
            details={
                **_mo(moId=7, source="88600"),
                "carrier": {"name": "EE", "mcc": 234},
                "tags": ["a", "b"],
                "userAgent": None,
            }
        ),
        headers=MIXED,
        fields={"attributes": {"carrier.name": "EE", "carrier.mcc": "234", "tags": '["a","b"]'}},
    ),
    report(
        "expired, any case, no date",
        b'{"type":"report","mtId":"m1","status":"EXPIRED","outcomeId":12,"outcomeDescription":"Expired"}',
        "failed",
        ("12", "Expired"),
        status="EXPIRED",
    ),
    report(
        "retrieved is delivered",
        b'{"type":"REPORT","mtId":"m1","status":"Retrieved","date":"2024-06-01T12:00:00Z"}',
        "delivered",
        (None, None),
        status="Retrieved",
    ),
    report(
        "forwarded is sent",
        b'{"type":"REPORT","mtId":"m1","status":"Forwarded","outcomeId":0}',
        "sent",
        (None, None),
        status="Forwarded",
        outcomeId="0",
    ),
    report(
        "unknown status is sent, kept as sent",
        b'{"type":"REPORT","mtId":"m1","status":"Teleported","extra":{"a":1}}',
        "sent",
        (None, None),
        **{"status": "Teleported", "extra.a": "1"},
    ),
    Case(
        "limits from the config: exactly enough parts and part bytes",
        body=mo_body(IMAGE, IMAGE),
        headers=MIXED,
        settings={"max_parts": 3, "max_part_bytes": 1024},
        fields={"media": [stored(JPEG, "image/jpeg", "a.jpg")] * 2},
    ),
    # Media names from part headers are safe (issue 9).
    named(
        'Content-Disposition: inline; filename="../../../etc/passwd"',
        "passwd",
        "../../../etc/passwd",
    ),
    named("Content-Id: </etc/cron.d/x>", "x", "/etc/cron.d/x"),
    named("Content-Id: <C:\\Users\\x.png>", "x.png", "C:\\Users\\x.png"),
    named('Content-Disposition: inline; filename="a\x00b\x07.png"', "ab.png", "a\x00b\x07.png"),
    named(
        "Content-Disposition: attachment; filename*=UTF-8''%e2%82%ac%20rates.png",
        "€ rates.png",
        None,
    ),
    named(
        'Content-Disposition: attachment; filename="fallback.png"; '
        "filename*=utf-8'en'na%C3%AFve.png",
        "naïve.png",
        None,
    ),
    named("Content-Id: <..>", None, ".."),
    named("Content-Id: <" + "n" * 300 + ".png>", "n" * 255, "n" * 300 + ".png"),
    refused("MO not multipart", orjson.dumps(MO), JSON, "not_multipart"),
    refused(
        "neither multipart nor JSON", b"--b\r\n", {"Content-Type": "text/plain"}, "invalid_json"
    ),
    refused("JSON not an object", b"[1]", JSON, "invalid_event"),
    refused("no type", b"{}", JSON, "missing_field"),
    refused("unknown type", b'{"type":"MT"}', JSON, "unknown_type"),
    refused("report, no mtId", b'{"type":"REPORT","status":"x"}', JSON, "missing_field"),
    refused("report, no status", b'{"type":"REPORT","mtId":"m1"}', JSON, "missing_field"),
    refused("blank mtId", b'{"type":"REPORT","mtId":" ","status":"x"}', JSON, "missing_field"),
    refused(
        "report, outcomeId not an integer",
        b'{"type":"REPORT","mtId":"m","status":"Rejected","outcomeId":1.5}',
        JSON,
        "invalid_field",
    ),
    refused(
        "report, bad date",
        b'{"type":"REPORT","mtId":"m","status":"x","date":"soon"}',
        JSON,
        "invalid_time",
    ),
    refused("no boundary", mo_body(), {"Content-Type": "multipart/mixed"}, "missing_boundary"),
    refused(
        "other boundary", mo_body(), {"Content-Type": "multipart/mixed; boundary=c"}, "no_parts"
    ),
    refused("closing delimiter only", b"--b--\r\n", MIXED, "no_parts"),
    refused(
        "JSON part not first",
        b"--b\r\n%b\r\n--b\r\nContent-Type: application/json\r\n\r\n%b\r\n--b--"
        % (IMAGE, orjson.dumps(MO)),
        MIXED,
        "missing_json_part",
    ),
    refused(
        "JSON part not JSON",
        b"--b\r\nContent-Type: application/json\r\n\r\n{nope\r\n--b--",
        MIXED,
        "invalid_json",
    ),
    refused(
        "JSON part too deep",
        b"--b\r\nContent-Id: main\r\n\r\n%b%b\r\n--b--" % (b"[" * 40, b"]" * 40),
        MIXED,
        "json_too_deep",
    ),
    refused(
        "REPORT as multipart",
        mo_body(details={"type": "REPORT", "mtId": "m1", "status": "Delivered"}),
        MIXED,
        "unknown_type",
    ),
    refused("CTE base64, raw", mo_body(BASE64_JPEG + JPEG), MIXED, "invalid_base64"),
    refused(
        "CTE base64, bad padding, after a good image",
        mo_body(IMAGE, BASE64_JPEG + base64.b64encode(JPEG)[:-2]),
        MIXED,
        "invalid_base64",
    ),
    refused(
        "unknown CTE",
        mo_body(b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx"),
        MIXED,
        "unsupported_transfer_encoding",
    ),
    refused("no moId", mo_body(details=_mo(moId=None)), MIXED, "missing_field"),
    refused("float moId", mo_body(details=_mo(moId=1.5)), MIXED, "invalid_field"),
    refused("no source", mo_body(details=_mo(source=None)), MIXED, "missing_field"),
    refused("no destinations", mo_body(details=_mo(destinations=None)), MIXED, "missing_field"),
    refused("empty destinations", mo_body(details=_mo(destinations=[])), MIXED, "missing_field"),
    refused(
        "blank first destination",
        mo_body(details=_mo(destinations=[" ", "88600"])),
        MIXED,
        "missing_field",
    ),
    refused("blank source", mo_body(details=_mo(source=" ")), MIXED, "missing_field"),
    refused(
        "destinations an object",
        mo_body(details=_mo(destinations={"to": "88600"})),
        MIXED,
        "invalid_field",
    ),
    refused("bad date", mo_body(details=_mo(date="16/07/2014")), MIXED, "invalid_time"),
    refused(
        "non-latin-1 Content-Type",
        DOC,
        {"Content-Type": "multipart/mixed; boundary=\u2603"},
        "invalid_header",
    ),
    refused("51 parts", mo_body(*[TEXT] * 50), MIXED, "too_many_parts", 413),
    refused(
        "a part over the default 5 MiB",
        mo_body(IMAGE, b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * (5 * 1024 * 1024 + 1)),
        MIXED,
        "part_too_large",
        413,
    ),
    Case(
        "max_parts from the config",
        body=mo_body(IMAGE, IMAGE),
        headers=MIXED,
        settings={"max_parts": 2},
        refused=("too_many_parts", 413),
    ),
    Case(
        "max_part_bytes from the config",
        body=mo_body(IMAGE, IMAGE),
        headers=MIXED,
        settings={"max_part_bytes": len(JPEG) - 1},
        refused=("part_too_large", 413),
    ),
    # Hostile input (issue 9): each failed on the code before commit b25f525.
    refused("a unit separator in the id", mo_body(details=_mo(moId="1\x1f2")), MIXED, "invalid_id"),
    refused(
        "recipients past the default budget, cc included",
        mo_body(details=_mo(ccs=["+447700900123"] * 100)),
        MIXED,
        "too_many_recipients",
        413,
    ),
    refused(
        "1-character boundary over 10 MB of dashes",
        b"-" * 10_000_000,
        {"Content-Type": "multipart/mixed; boundary=-"},
        "no_parts",
    ),
    refused(
        "10 MB of lines that look like delimiters",
        b"\n----x" * 2_000_000,
        {"Content-Type": "multipart/mixed; boundary=-"},
        "invalid_multipart",
    ),
    refused(
        "boundary longer than RFC 2046's 70 characters",
        mo_body(),
        {"Content-Type": "multipart/mixed; boundary=" + "b" * 71},
        "invalid_boundary",
    ),
    refused(
        "boundary outside RFC 2046's characters",
        mo_body(),
        {"Content-Type": 'multipart/mixed; boundary="b<>"'},
        "invalid_boundary",
    ),
]

test_table = harness.table_test(NAME, TABLE)


@pytest.fixture
def translate(tmp_path: Path) -> harness.Translator:
    return harness.Translator(NAME, tmp_path / "media")


def test_event_ids_stable_across_retries_distinct_per_event(translate: harness.Translator) -> None:
    def ids(body: bytes, headers: dict[str, str]) -> str:
        [event] = translate(body, headers)
        return event.event_id

    mo = ids(DOC, DOC_HEADERS)
    assert mo == event_id(NAME, "MO", "123456789012345")
    assert ids(DOC.replace(b"\n", b"\r\n"), {"Content-Type": DOC_CONTENT_TYPE}) == mo
    assert ids(DOC.replace(b"123456789012345", b"123456789012346"), DOC_HEADERS) != mo

    rejected = payload(MODULE, "report_rejected.json")
    report = ids(rejected, JSON_HEADERS)
    assert report == event_id(
        NAME, "REPORT", "123456789012345", "Rejected", 9, "2014-07-16T19:20:30+00:00"
    )
    assert ids(rejected, JSON) == report
    delivered = rejected.replace(b"Rejected", b"Delivered")
    later = rejected.replace(b"19:20:30", b"19:21:30")
    assert len({report, ids(delivered, JSON_HEADERS), ids(later, JSON_HEADERS), mo}) == 4


def test_replies() -> None:
    assert PROVIDER.accepted([]) == Reply(200)
    assert PROVIDER.accepted([]).body == b""
    reply = PROVIDER.refused(Refusal("part_too_large", "too big", status=413))
    assert reply.status == 413
    assert orjson.loads(reply.body) == {"error": "part_too_large", "detail": "too big"}


def test_parts_past_the_budget_are_never_read(translate: harness.Translator) -> None:
    # A part that is refused for itself once read: the 50th part is read, the 51st never is,
    # nor any of the 10,000 after it.
    unreadable = b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx"
    budget = harness.default(NAME, "max_parts")
    last = translate.refusal(mo_body(*[TEXT] * (budget - 2), unreadable), MIXED)
    assert last.code == "unsupported_transfer_encoding"
    past = mo_body(*[TEXT] * (budget - 1), unreadable, *[TEXT] * 10_000, unreadable)
    refused = translate.refusal(past, MIXED)
    assert (refused.code, refused.status) == ("too_many_parts", 413)


def test_a_huge_part_header_line_is_not_a_header(translate: harness.Translator) -> None:
    part = b"Content-Type: image/png\r\nContent-Id: <" + b"n" * 9_000_000 + b">\r\n\r\n"
    try:
        events = translate(mo_body(part + base64.b64encode(b"png")), MIXED)
    except Refusal:
        return  # refused: fine, as long as nothing of it became a 9 MB name or attribute
    assert all(len(m.filename or "") <= 255 for m in events[0].media)
    assert all(len(v) < 10_000 for v in events[0].attributes.values())


def test_media_without_a_store_is_refused_as_ours(translate: harness.Translator) -> None:
    route = translate.route()
    context = dataclasses.replace(route.context, media_store=None)
    with pytest.raises(Refusal) as info:
        PROVIDER.translate(callback(DOC, DOC_HEADERS), context)
    assert (info.value.code, info.value.status) == ("no_media_store", 500)
    # Without media parts no store is needed.
    text = mo_body(b"Content-Type: text/plain\r\n\r\nhi")
    [event] = PROVIDER.translate(callback(text, MIXED), context)
    assert event.text == "hi"


def test_store_failure_is_retryable(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "media"
    not_a_directory.write_bytes(b"")
    refused = harness.Translator(NAME, not_a_directory).refusal(DOC, DOC_HEADERS)
    assert (refused.code, refused.status) == ("media_store_failed", 503)


def test_module_shape() -> None:
    assert PROVIDER.name == NAME == "openmarket"
    assert PROVIDERS[NAME] is PROVIDER
    assert PROVIDER.translate.__module__ == "connector.providers.openmarket"


@given(
    body=st.lists(st.sampled_from([b"-", b"--b1", b"\n", b"\r\n", b"x", b"--b1--", b"-b"])).map(
        b"".join
    ),
    start=st.integers(0, 40),
)
@example(body=b"-" * 100 + b"\n--b1", start=0)  # past the dashes tried one by one
def test_a_delimiter_line_is_found_where_the_whole_pattern_is(body: bytes, start: int) -> None:
    # Found by its first dash, then checked (mime._line_start): the same line as a search for
    # a line break followed by the marker, however many dashes come first.
    at = body.find(b"\n--b1", start)
    assert mime._line_start(body, b"--b1", start) == (at if at == -1 else at + 1)


def _strict_b64(text: bytes) -> bytes:
    """What mime._b64decode decodes a part with line breaks to, read the plain way."""
    return base64.b64decode(text.replace(b"\r", b"").replace(b"\n", b""), validate=True)


def _wrap(content: bytes, width: int, breaks: bytes, trailing: bool) -> bytes:
    encoded = base64.b64encode(content)
    lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
    return breaks.join(lines) + (breaks if trailing else b"")


@given(
    content=st.binary(max_size=300),
    width=st.integers(1, 80),
    breaks=st.sampled_from([b"\r\n", b"\n"]),
    trailing=st.booleans(),
    edits=st.lists(
        st.tuples(st.integers(0, 500), st.sampled_from([b"=", b"*", b" ", b"\n", b"\r", b"A"])),
        max_size=3,
    ),
)
@example(content=b"ABCDEFGH", width=4, breaks=b"\r\n", trailing=True, edits=[])
@example(content=b"ABCDEFGH", width=4, breaks=b"\n", trailing=False, edits=[(6, b"*")])
def test_wrapped_base64_is_decoded_as_the_strict_reader_does(
    content: bytes, width: int, breaks: bytes, trailing: bool, edits: list[tuple[int, bytes]]
) -> None:
    # The fast path (mime._wrapped_b64decode) either declines, leaving the text to the strict
    # path, or decodes exactly what the strict reader does; and it takes what encoders write
    # (lines of a multiple of 4 characters) whole.
    text = _wrap(content, width, breaks, trailing)
    for at, replacement in edits:
        at = min(at, len(text))
        text = text[:at] + replacement + text[at + 1 :]
    decoded = mime._wrapped_b64decode(text)
    if content and not edits and width % 4 == 0 and breaks in text:
        assert decoded == content
    elif decoded is not None:
        assert decoded == _strict_b64(text)
