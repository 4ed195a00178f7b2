"""OpenMarket callbacks to canonical records: MO multipart bodies and JSON delivery reports."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import orjson
import pytest

from connector.callback import Limits, Refusal, Reply, TranslateContext
from connector.codec import current_schema
from connector.media import FilesystemMediaStore
from connector.providers import openmarket
from connector.providers.openmarket import PROVIDER, mime
from connector.record import Media, MmsEvent, event_id
from tests.helpers import RECEIVED_AT, callback, payload

JPEG = payload("openmarket", "pixel.jpg")
PNG = payload("openmarket", "dot.png")
REQUEST_ID = "015-3DD6C366-D68A-4A02-9777-19CBC8AB40C1"
# The docs' header as drawn, trailing space included.
DOC_CONTENT_TYPE = "multipart/mixed; boundary=mimeboundary "
DOC_HEADERS = {"Content-Type": DOC_CONTENT_TYPE, "X-Request-Id": REQUEST_ID}
JSON_HEADERS = {"Content-Type": "application/json", "X-Request-Id": REQUEST_ID}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def ctx(root: Path) -> TranslateContext:
    return TranslateContext(media_store=FilesystemMediaStore(root))


def translate(body: bytes | str, headers: dict[str, str], ctx: TranslateContext) -> list[MmsEvent]:
    return PROVIDER.translate(callback(body, headers), ctx)


def multipart(boundary: str) -> dict[str, str]:
    return {"Content-Type": f"multipart/mixed; boundary={boundary}"}


def stored(
    root: Path, content: bytes, content_type: str | None, filename: str | None
) -> dict[str, object]:
    digest = hashlib.sha256(content).hexdigest()
    return {
        "uri": (root.resolve() / digest[:2] / digest).as_uri(),
        "content_type": content_type,
        "size": len(content),
        "sha256": digest,
        "filename": filename,
        "source_uri": None,
        "url": None,
        "status": "stored",
        "reason": None,
    }


def mo_body(*parts: bytes, details: dict[str, object] | None = None) -> bytes:
    """A CRLF multipart MO: a JSON first part, then `parts` (headers, blank line, body)."""
    data = details or {
        "type": "MO",
        "moId": 42,
        "source": "447800000001",
        "destinations": ["88600"],
        "date": "2024-06-01T10:00:00Z",
    }
    # The standard library writes integers past 64 bits, which orjson refuses.
    json_part = (
        b"Content-Type: application/json\r\nContent-Id: main\r\n\r\n" + json.dumps(data).encode()
    )
    return b"".join(b"--b\r\n" + p + b"\r\n" for p in (json_part, *parts)) + b"--b--\r\n"


def test_doc_example_every_field(root: Path, ctx: TranslateContext) -> None:
    [event] = translate(payload("openmarket", "mo_doc_example.txt"), DOC_HEADERS, ctx)
    assert event.to_avro() == {
        "event_id": event_id("openmarket", "MO", "123456789012345"),
        "provider": "openmarket",
        "event_type": "received",
        "direction": "inbound",
        "owner": "88600",
        "from": "+447800000001",
        "to": ["88600"],
        "cc": ["88602"],
        "bcc": [],
        "text": "This is a text attachment",
        "subject": "Test MMS",
        "media": [stored(root, JPEG, "image/jpeg", "image.jpg")],
        "provider_message_id": "123456789012345",
        "application_id": None,
        "tag": None,
        "occurred_at": datetime(2014, 7, 16, 19, 20, 30, tzinfo=UTC),
        "received_at": RECEIVED_AT,
        "segment_count": None,
        "error_code": None,
        "error_description": None,
        "attributes": {
            "mobileOperatorId": "77",
            "userAgent": "HTC One",
            "raw.from": "447800000001",
            "header.x-request-id": REQUEST_ID,
        },
    }
    digest = hashlib.sha256(JPEG).hexdigest()
    assert (root / digest[:2] / digest).read_bytes() == JPEG


PAYLOADS = [
    pytest.param(
        "mo_crlf_preamble.eml",
        'multipart/mixed; boundary="----=_Part_4421_1871.1718031234"',
        {
            "owner": "+14155550100",
            "from": "+14155550123",
            "to": ["+14155550100"],
            "text": "Happy birthday 🎂🎉 — see you at 7!",
            "subject": "Party",
            "provider_message_id": "987654321098765",
            "occurred_at": datetime(2024, 6, 1, 6, 59, 58, tzinfo=UTC),
        },
        {
            "mobileOperatorId": "383",
            "userAgent": "iPhone15,2",
            "raw.from": "14155550123",
            "raw.owner": "14155550100",
            "raw.to": '["14155550100"]',
        },
        [(PNG, "image/png", "dot.png")],
        id="CRLF, preamble, quoted boundary, base64 UTF-8 text with emoji, epilogue",
    ),
    pytest.param(
        "mo_several_images.eml",
        "Multipart/Mixed; BOUNDARY=b1; type=application/json",
        {
            "owner": "88600",
            "cc": ["+447800000002"],
            "bcc": ["88600"],
            "text": "Café on the beach, señor\nPS: sunscreen",
            "provider_message_id": "4401",
        },
        {
            "mobileOperatorId": "77",
            "userAgent": "Pixel 8",
            "raw.from": "447800000001",
            "raw.cc": '["447800000002"]',
        },
        [
            (
                b'<smil><body><par dur="5000ms"><img src="photo1.jpg"/><text src="text.txt"/>'
                b"</par></body></smil>",
                "application/smil",
                "presentation.smil",
            ),
            (JPEG, "image/jpeg", "photo1.jpg"),
            (JPEG, "image/jpeg", "photo2.jpg"),
            (PNG, "image/png", "map.png"),
        ],
        id="several images, Content-Disposition and Content-Location names, two text parts",
    ),
    pytest.param(
        "mo_lf_unterminated.txt",
        "multipart/mixed; boundary=x",
        {
            "owner": "+61480000000",
            "from": "+61412345678",
            "text": None,
            "subject": None,
            "occurred_at": datetime(2024, 2, 28, 22, 15, tzinfo=UTC),
        },
        {
            "mobileOperatorId": "1201",
            "raw.from": "61412345678",
            "raw.owner": "61480000000",
            "raw.to": '["61480000000"]',
        },
        [(JPEG, "image/jpeg", None)],
        id="LF only, header names in odd case, no closing delimiter, no Content-Id, no userAgent",
    ),
]


@pytest.mark.parametrize(("name", "content_type", "expected", "attributes", "media"), PAYLOADS)
def test_mo_payload_files(
    name: str,
    content_type: str,
    expected: dict[str, object],
    attributes: dict[str, str],
    media: list[tuple[bytes, str, str | None]],
    root: Path,
    ctx: TranslateContext,
) -> None:
    [event] = translate(payload("openmarket", name), {"Content-Type": content_type}, ctx)
    record = event.to_avro()
    assert {k: record[k] for k in expected} == expected
    assert (event.event_type, event.direction) == ("received", "inbound")
    assert event.attributes == attributes
    assert record["media"] == [stored(root, *m) for m in media]


def test_same_bytes_are_stored_once_content_addressed(root: Path, ctx: TranslateContext) -> None:
    headers = multipart("b1")
    [event] = translate(payload("openmarket", "mo_several_images.eml"), headers, ctx)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(event.media) == 4
    assert len(files) == 3  # the JPEG came twice
    for media in event.media:
        path = Path(media.uri.removeprefix("file://"))
        assert path.parent.parent == root.resolve()
        assert path.name == media.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # A retry stores nothing new and yields the same record.
    [again] = translate(payload("openmarket", "mo_several_images.eml"), headers, ctx)
    assert again == event
    assert sorted(p for p in root.rglob("*") if p.is_file()) == files


DOC = payload("openmarket", "mo_doc_example.txt")


def _standard_form(body: bytes) -> bytes:
    """The docs' example as real MIME: a blank line after each part's headers."""
    for header in (b"Content-Id: main \n", b"Content-Id: image.jpg \n", b"Content-Id: text.txt \n"):
        body = body.replace(header, header + b"\n")
    return body


VARIANTS = [
    pytest.param(DOC, DOC_CONTENT_TYPE, id="as drawn: LF, no blank line, trailing spaces"),
    pytest.param(DOC.replace(b"\n", b"\r\n"), DOC_CONTENT_TYPE, id="as drawn with CRLF"),
    pytest.param(_standard_form(DOC), DOC_CONTENT_TYPE, id="blank lines, LF"),
    pytest.param(
        _standard_form(DOC).replace(b"\n", b"\r\n"), DOC_CONTENT_TYPE, id="blank lines, CRLF"
    ),
    pytest.param(
        b"This is a multi-part message in MIME format.\r\n\r\n" + DOC,
        DOC_CONTENT_TYPE,
        id="preamble",
    ),
    pytest.param(DOC + b"\nepilogue --mimeboundary\n", DOC_CONTENT_TYPE, id="epilogue"),
    pytest.param(
        DOC.removesuffix(b"--mimeboundary--\n"), DOC_CONTENT_TYPE, id="no closing delimiter"
    ),
    pytest.param(
        DOC.replace(b"--mimeboundary\n", b"--mimeboundary  \t\n"),
        DOC_CONTENT_TYPE,
        id="padding after delimiters",
    ),
    pytest.param(DOC, 'multipart/mixed; boundary="mimeboundary"', id="quoted boundary"),
    pytest.param(
        DOC, "MULTIPART/MIXED;charset=utf-8;  Boundary = mimeboundary", id="parameters in any case"
    ),
    pytest.param(
        DOC.replace(b"Content-Type", b"content-type").replace(b"Content-Id", b"CONTENT-ID"),
        DOC_CONTENT_TYPE,
        id="part header names in any case",
    ),
    pytest.param(
        DOC.replace(
            b"Content-Id: image.jpg \n",
            b"Content-Id: image.jpg\nContent-Transfer-Encoding: base64\n",
        ),
        DOC_CONTENT_TYPE,
        id="explicit base64",
    ),
    pytest.param(
        DOC.replace(b"Content-Type: text/plain\n", b'Content-Type: text/plain; charset="utf-8"\n'),
        DOC_CONTENT_TYPE,
        id="charset on text/plain",
    ),
    pytest.param(
        DOC.replace(b"Content-Id: main \n{", b"Content-Id: main\n  {"),
        DOC_CONTENT_TYPE,
        id="indented JSON right after the headers",
    ),
]


@pytest.mark.parametrize(("body", "content_type"), VARIANTS)
def test_forms_of_the_doc_example_agree(
    body: bytes, content_type: str, ctx: TranslateContext
) -> None:
    [expected] = translate(DOC, DOC_HEADERS, ctx)
    [event] = translate(body, {"Content-Type": content_type, "X-Request-Id": REQUEST_ID}, ctx)
    assert event == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": DOC_CONTENT_TYPE, "x-request-id": REQUEST_ID},
        {"CONTENT-TYPE": DOC_CONTENT_TYPE, "X-REQUEST-ID": f" {REQUEST_ID} "},
        {"Content-type": DOC_CONTENT_TYPE, "X-Request-ID": REQUEST_ID},
    ],
)
def test_http_header_case(headers: dict[str, str], ctx: TranslateContext) -> None:
    [event] = translate(DOC, headers, ctx)
    assert event.attributes["header.x-request-id"] == REQUEST_ID
    assert event.text == "This is a text attachment"


def test_no_request_id_no_attribute(ctx: TranslateContext) -> None:
    [event] = translate(DOC, {"Content-Type": DOC_CONTENT_TYPE}, ctx)
    assert "header.x-request-id" not in event.attributes


TEXT_PARTS = [
    # (part headers, part body, expected text)
    pytest.param(b"Content-Type: text/plain", b"Good game", "Good game", id="raw text"),
    pytest.param(b"Content-Type: text/plain", b"Good", "Good", id="raw word that is valid base64"),
    pytest.param(b"Content-Type: text/plain", b"T2theQ==", "Okay", id="base64 without CTE"),
    pytest.param(
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit",
        b"T2theQ==",
        "T2theQ==",
        id="7bit says raw",
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64",
        base64.encodebytes("Ünïcödé ✓ 👩‍👩‍👧 🎉".encode()),
        "Ünïcödé ✓ 👩‍👩‍👧 🎉",
        id="base64 UTF-8 with emoji sequences",
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=utf-8",
        base64.b64encode("Ünïcödé ✓ 👩‍👩‍👧 🎉".encode()),
        "Ünïcödé ✓ 👩‍👩‍👧 🎉",
        id="base64 emoji without CTE",
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=utf-8",
        "raw ✓ 🎉".encode(),
        "raw ✓ 🎉",
        id="raw UTF-8",
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable",
        b"caf=C3=A9 au =\r\nlait",
        "café au lait",
        id="quoted-printable",
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit",
        "café".encode("latin-1"),
        "café",
        id="latin-1",
    ),
    pytest.param(
        b"Content-Type: text/plain;\r\n\tcharset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit",
        "café".encode("latin-1"),
        "café",
        id="folded header",
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=windows-1252",
        base64.b64encode("“quoted” €5".encode("cp1252")),
        "“quoted” €5",
        id="base64 windows-1252 without CTE",
    ),
    pytest.param(
        b"Content-Type: text/plain", b"caf\xe9 ok", "caf\ufffd ok", id="bad UTF-8 replaced"
    ),
    pytest.param(
        b"Content-Type: text/plain; charset=x-klingon",
        "héllo wörld".encode(),
        "héllo wörld",
        id="unknown charset read as UTF-8",
    ),
    pytest.param(
        b"Content-Type: text/plain",
        b"Note: bring snacks\r\nsee you",
        "Note: bring snacks\r\nsee you",
        id="header-like first line after a blank line is text",
    ),
]


@pytest.mark.parametrize(("headers", "body", "text"), TEXT_PARTS)
def test_text_parts(headers: bytes, body: bytes, text: str, ctx: TranslateContext) -> None:
    [event] = translate(mo_body(headers + b"\r\n\r\n" + body), multipart("b"), ctx)
    assert event.text == text
    assert event.media == []  # text parts are the text, not media


def test_header_like_body_line_without_blank_line_stays_text(ctx: TranslateContext) -> None:
    # The docs' form: no blank line; only Content-* lines are part headers there.
    part = b"Content-Type: text/plain\r\nContent-Id: text.txt\r\nNote: bring snacks\r\nbye"
    [event] = translate(mo_body(part), multipart("b"), ctx)
    assert event.text == "Note: bring snacks\r\nbye"


def test_part_without_any_headers_is_stored_without_type(root: Path, ctx: TranslateContext) -> None:
    [event] = translate(mo_body(b"\r\n" + base64.b64encode(JPEG)), multipart("b"), ctx)
    assert event.to_avro()["media"] == [stored(root, JPEG, None, None)]
    assert event.text is None


def test_filename_order(ctx: TranslateContext) -> None:
    parts = [
        b"Content-Type: image/png\r\nContent-Id: <cid.png>\r\n"
        b'Content-Disposition: inline; filename="named.png"\r\n\r\n' + base64.b64encode(PNG),
        b"Content-Type: image/png\r\nContent-Location: http://mmsc.example/a/loc.png\r\n"
        b"Content-Id: <id.png>\r\n\r\n" + base64.b64encode(PNG),
        b"Content-Type: image/png\r\nContent-Location: loc.png\r\n\r\n" + base64.b64encode(PNG),
        b"Content-Type: image/png\r\nContent-Id: <f\xc3\xb6to.png>\r\n\r\n" + base64.b64encode(PNG),
    ]
    [event] = translate(mo_body(*parts), multipart("b"), ctx)
    assert [m.filename for m in event.media] == ["named.png", "id.png", "loc.png", "föto.png"]


def test_media_order_and_types_follow_the_body(ctx: TranslateContext) -> None:
    parts = [
        b"Content-Type: image/jpeg\r\nContent-Id: a.jpg\r\n\r\n" + base64.b64encode(JPEG),
        b"Content-Type: text/plain\r\n\r\nfirst",
        b"Content-Type: image/png; name=b.png\r\nContent-Id: b.png\r\n"
        b"Content-Transfer-Encoding: binary\r\n\r\n" + PNG,
        b"Content-Type: text/plain\r\n\r\nsecond",
        b"Content-Type: text/x-vcard\r\nContent-Id: c.vcf\r\n\r\nBEGIN:VCARD\r\nEND:VCARD",
    ]
    [event] = translate(mo_body(*parts), multipart("b"), ctx)
    assert event.text == "first\nsecond"
    assert [(m.content_type, m.filename, m.size) for m in event.media] == [
        ("image/jpeg", "a.jpg", len(JPEG)),
        ("image/png", "b.png", len(PNG)),
        ("text/x-vcard", "c.vcf", len(b"BEGIN:VCARD\r\nEND:VCARD")),
    ]


@pytest.mark.parametrize(
    ("mo_id", "expected"),
    [
        (18446744073709551615, "18446744073709551615"),  # largest id orjson keeps an int
        # Past 64 bits orjson gives a float; such bodies are read exactly instead.
        (123456789012345678901234567890, "123456789012345678901234567890"),
        (-9223372036854775809, "-9223372036854775809"),
        (123456789012345678, "123456789012345678"),
        ("00123", "00123"),
    ],
)
def test_mo_id_kept_exact(mo_id: int | str, expected: str, ctx: TranslateContext) -> None:
    details = {"type": "MO", "moId": mo_id, "source": "447800000001", "destinations": ["88600"]}
    [event] = translate(mo_body(details=details), multipart("b"), ctx)
    assert event.provider_message_id == expected
    assert event.event_id == event_id("openmarket", "MO", expected)
    assert event.occurred_at is None  # no date: tolerated


def test_default_country_reads_national_numbers(ctx: TranslateContext) -> None:
    details = {"type": "mo", "moId": 1, "source": "7045551234", "destinations": "9195550002"}
    context = TranslateContext(default_country="US", media_store=ctx.media_store)
    [event] = translate(mo_body(details=details), multipart("b"), context)
    assert (event.owner, event.from_, event.to) == (
        "+19195550002",
        "+17045551234",
        ["+19195550002"],
    )
    assert event.attributes["raw.owner"] == "9195550002"
    assert event.attributes["raw.from"] == "7045551234"


def test_unknown_json_fields_kept_in_attributes(ctx: TranslateContext) -> None:
    details = {
        "type": "MO",
        "moId": 7,
        "source": "88600",
        "destinations": ["88600"],
        "carrier": {"name": "EE", "mcc": 234},
        "tags": ["a", "b"],
        "userAgent": None,
    }
    [event] = translate(mo_body(details=details), multipart("b"), ctx)
    assert event.attributes == {"carrier.name": "EE", "carrier.mcc": "234", "tags": '["a","b"]'}


REPORTS = [
    # (report JSON, event_type, error_code, error_description, attributes)
    pytest.param(
        payload("openmarket", "report_rejected.json"),
        "failed",
        "9",
        "Recipient not found on mobile operator",
        {"status": "Rejected", "userAgent": "HTC One", "header.x-request-id": REQUEST_ID},
        id="the docs' example",
    ),
    pytest.param(
        payload("openmarket", "report_delivered.json"),
        "delivered",
        None,
        None,
        {
            "status": "Delivered",
            "outcomeId": "4",
            "outcomeDescription": "Message delivered",
            "header.x-request-id": REQUEST_ID,
        },
        id="delivered keeps the outcome as attributes",
    ),
    pytest.param(
        b'{"type":"report","mtId":"m1","status":"EXPIRED","outcomeId":12,'
        b'"outcomeDescription":"Expired"}',
        "failed",
        "12",
        "Expired",
        {"status": "EXPIRED", "header.x-request-id": REQUEST_ID},
        id="expired, any case, no date",
    ),
    pytest.param(
        b'{"type":"REPORT","mtId":"m1","status":"Retrieved","date":"2024-06-01T12:00:00Z"}',
        "delivered",
        None,
        None,
        {"status": "Retrieved", "header.x-request-id": REQUEST_ID},
        id="retrieved is delivered",
    ),
    pytest.param(
        b'{"type":"REPORT","mtId":"m1","status":"Forwarded","outcomeId":0}',
        "sent",
        None,
        None,
        {"status": "Forwarded", "outcomeId": "0", "header.x-request-id": REQUEST_ID},
        id="forwarded is sent",
    ),
    pytest.param(
        b'{"type":"REPORT","mtId":"m1","status":"Teleported","extra":{"a":1}}',
        "sent",
        None,
        None,
        {"status": "Teleported", "extra.a": "1", "header.x-request-id": REQUEST_ID},
        id="unknown status is sent, kept as sent",
    ),
]


@pytest.mark.parametrize(("body", "event_type", "code", "description", "attributes"), REPORTS)
def test_reports(
    body: bytes,
    event_type: str,
    code: str | None,
    description: str | None,
    attributes: dict[str, str],
) -> None:
    [event] = translate(body, JSON_HEADERS, TranslateContext())
    data = json.loads(body)
    assert (event.event_type, event.direction) == (event_type, "outbound")
    assert (event.error_code, event.error_description) == (code, description)
    assert event.owner == event.provider_message_id == data["mtId"]
    assert (event.from_, event.to, event.media, event.text) == (None, [], [], None)
    assert event.attributes == attributes


def test_report_every_field() -> None:
    [event] = translate(
        payload("openmarket", "report_rejected.json"), JSON_HEADERS, TranslateContext()
    )
    assert event.to_avro() == {
        "event_id": event_id(
            "openmarket", "REPORT", "123456789012345", "Rejected", 9, "2014-07-16T19:20:30+00:00"
        ),
        "provider": "openmarket",
        "event_type": "failed",
        "direction": "outbound",
        "owner": "123456789012345",
        "from": None,
        "to": [],
        "cc": [],
        "bcc": [],
        "text": None,
        "subject": None,
        "media": [],
        "provider_message_id": "123456789012345",
        "application_id": None,
        "tag": None,
        "occurred_at": datetime(2014, 7, 16, 19, 20, 30, tzinfo=UTC),
        "received_at": RECEIVED_AT,
        "segment_count": None,
        "error_code": "9",
        "error_description": "Recipient not found on mobile operator",
        "attributes": {
            "status": "Rejected",
            "userAgent": "HTC One",
            "header.x-request-id": REQUEST_ID,
        },
    }


def test_event_ids_stable_across_retries_distinct_per_event(ctx: TranslateContext) -> None:
    def ids(body: bytes, headers: dict[str, str]) -> str:
        [event] = translate(body, headers, ctx)
        return event.event_id

    mo = ids(DOC, DOC_HEADERS)
    assert ids(DOC.replace(b"\n", b"\r\n"), {"Content-Type": DOC_CONTENT_TYPE}) == mo
    assert ids(DOC.replace(b"123456789012345", b"123456789012346"), DOC_HEADERS) != mo

    rejected = payload("openmarket", "report_rejected.json")
    report = ids(rejected, JSON_HEADERS)
    assert ids(rejected, {"Content-Type": "application/json"}) == report
    delivered = rejected.replace(b"Rejected", b"Delivered")
    later = rejected.replace(b"19:20:30", b"19:21:30")
    assert len({report, ids(delivered, JSON_HEADERS), ids(later, JSON_HEADERS), mo}) == 4


def test_replies() -> None:
    assert PROVIDER.accepted([]) == Reply(200)
    assert PROVIDER.accepted([]).body == b""
    reply = PROVIDER.refused(Refusal("part_too_large", "too big", status=413))
    assert reply.status == 413
    assert orjson.loads(reply.body) == {"error": "part_too_large", "detail": "too big"}


def test_records_fit_the_avro_schema(ctx: TranslateContext) -> None:
    schema = fastavro.parse_schema(json.loads(current_schema()))
    events = [
        *translate(DOC, DOC_HEADERS, ctx),
        *translate(payload("openmarket", "mo_several_images.eml"), multipart("b1"), ctx),
        *translate(payload("openmarket", "report_rejected.json"), JSON_HEADERS, ctx),
        *translate(payload("openmarket", "report_delivered.json"), JSON_HEADERS, ctx),
    ]
    for event in events:
        assert fastavro.validation.validate(event.to_avro(), schema, raise_errors=True)


IMAGE = b"Content-Type: image/jpeg\r\nContent-Id: a.jpg\r\n\r\n" + base64.b64encode(JPEG)
MO = {"type": "MO", "moId": 1, "source": "447800000001", "destinations": ["88600"]}


def _mo(**changes: object) -> dict[str, object]:
    return {k: v for k, v in {**MO, **changes}.items() if v is not None}


JSON = "application/json"
MIXED = "multipart/mixed; boundary=b"
BASE64_JPEG = b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n\r\n"

REFUSED = [
    # (body, content type, code); all 400
    pytest.param(orjson.dumps(MO), JSON, "not_multipart", id="MO not multipart"),
    pytest.param(b"--b\r\n", "text/plain", "invalid_json", id="neither multipart nor JSON"),
    pytest.param(b"[1]", JSON, "invalid_event", id="JSON not an object"),
    pytest.param(b"{}", JSON, "missing_field", id="no type"),
    pytest.param(b'{"type":"MT"}', JSON, "unknown_type", id="unknown type"),
    pytest.param(b'{"type":"REPORT","status":"x"}', JSON, "missing_field", id="report, no mtId"),
    pytest.param(b'{"type":"REPORT","mtId":"m1"}', JSON, "missing_field", id="report, no status"),
    pytest.param(
        b'{"type":"REPORT","mtId":" ","status":"x"}', JSON, "missing_field", id="blank mtId"
    ),
    pytest.param(
        b'{"type":"REPORT","mtId":"m","status":"Rejected","outcomeId":1.5}',
        JSON,
        "invalid_field",
        id="report, outcomeId not an integer",
    ),
    pytest.param(
        b'{"type":"REPORT","mtId":"m","status":"x","date":"soon"}',
        JSON,
        "invalid_time",
        id="report, bad date",
    ),
    pytest.param(mo_body(), "multipart/mixed", "missing_boundary", id="no boundary"),
    pytest.param(mo_body(), "multipart/mixed; boundary=c", "no_parts", id="other boundary"),
    pytest.param(b"--b--\r\n", MIXED, "no_parts", id="closing delimiter only"),
    pytest.param(
        b"--b\r\n%b\r\n--b\r\nContent-Type: application/json\r\n\r\n%b\r\n--b--"
        % (IMAGE, orjson.dumps(MO)),
        MIXED,
        "missing_json_part",
        id="JSON part not first",
    ),
    pytest.param(
        b"--b\r\nContent-Type: application/json\r\n\r\n{nope\r\n--b--",
        MIXED,
        "invalid_json",
        id="JSON part not JSON",
    ),
    pytest.param(
        b"--b\r\nContent-Id: main\r\n\r\n%b%b\r\n--b--" % (b"[" * 40, b"]" * 40),
        MIXED,
        "json_too_deep",
        id="JSON part too deep",
    ),
    pytest.param(
        mo_body(details={"type": "REPORT", "mtId": "m1", "status": "Delivered"}),
        MIXED,
        "unknown_type",
        id="REPORT as multipart",
    ),
    pytest.param(mo_body(BASE64_JPEG + JPEG), MIXED, "invalid_base64", id="CTE base64, raw"),
    pytest.param(
        mo_body(IMAGE, BASE64_JPEG + base64.b64encode(JPEG)[:-2]),
        MIXED,
        "invalid_base64",
        id="CTE base64, bad padding, after a good image",
    ),
    pytest.param(
        mo_body(b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx"),
        MIXED,
        "unsupported_transfer_encoding",
        id="unknown CTE",
    ),
    pytest.param(mo_body(details=_mo(moId=None)), MIXED, "missing_field", id="no moId"),
    pytest.param(mo_body(details=_mo(moId=1.5)), MIXED, "invalid_field", id="float moId"),
    pytest.param(mo_body(details=_mo(source=None)), MIXED, "missing_field", id="no source"),
    pytest.param(
        mo_body(details=_mo(destinations=None)), MIXED, "missing_field", id="no destinations"
    ),
    pytest.param(
        mo_body(details=_mo(destinations=[])), MIXED, "missing_field", id="empty destinations"
    ),
    pytest.param(
        mo_body(details=_mo(destinations=[" ", "88600"])),
        MIXED,
        "missing_field",
        id="blank first destination",
    ),
    pytest.param(mo_body(details=_mo(source=" ")), MIXED, "missing_field", id="blank source"),
    pytest.param(
        mo_body(details=_mo(destinations={"to": "88600"})),
        MIXED,
        "invalid_field",
        id="destinations an object",
    ),
    pytest.param(mo_body(details=_mo(date="16/07/2014")), MIXED, "invalid_time", id="bad date"),
]


@pytest.mark.parametrize(("body", "content_type", "code"), REFUSED)
def test_refusals_name_the_problem(
    body: bytes, content_type: str, code: str, root: Path, ctx: TranslateContext
) -> None:
    with pytest.raises(Refusal) as info:
        translate(body, {"Content-Type": content_type}, ctx)
    assert (info.value.code, info.value.status) == (code, 400)
    reply = PROVIDER.refused(info.value)
    assert reply.status == 400
    assert orjson.loads(reply.body)["error"] == code
    assert not root.exists()  # a refused callback stores nothing


TOO_LARGE = [
    pytest.param(
        mo_body(*[b"Content-Type: text/plain\r\n\r\nx"] * 50), "too_many_parts", id="51 parts"
    ),
    pytest.param(
        mo_body(IMAGE, b"Content-Type: image/jpeg\r\n\r\n" + b"\xff" * (5 * 1024 * 1024 + 1)),
        "part_too_large",
        id="a part over the default 5 MiB",
    ),
]


@pytest.mark.parametrize(("body", "code"), TOO_LARGE)
def test_default_limits(body: bytes, code: str, root: Path, ctx: TranslateContext) -> None:
    with pytest.raises(Refusal) as info:
        translate(body, multipart("b"), ctx)
    assert (info.value.code, info.value.status) == (code, 413)
    assert PROVIDER.refused(info.value).status == 413
    assert not root.exists()


def test_limits_come_from_the_context(ctx: TranslateContext) -> None:
    body = mo_body(IMAGE, IMAGE)
    small = TranslateContext(media_store=ctx.media_store, limits=Limits(max_parts=2))
    with pytest.raises(Refusal, match="too_many_parts"):
        translate(body, multipart("b"), small)
    tiny = TranslateContext(
        media_store=ctx.media_store, limits=Limits(max_part_bytes=len(JPEG) - 1)
    )
    with pytest.raises(Refusal, match="part_too_large"):
        translate(body, multipart("b"), tiny)
    exact = TranslateContext(
        media_store=ctx.media_store, limits=Limits(max_parts=3, max_part_bytes=1024)
    )
    assert len(translate(body, multipart("b"), exact)[0].media) == 2


def test_ten_thousand_parts_stop_at_the_limit(
    monkeypatch: pytest.MonkeyPatch, ctx: TranslateContext
) -> None:
    seen: list[bytes] = []
    real = mime._part

    def counting(raw: bytes, limits: Limits) -> mime.Part:
        seen.append(raw)
        return real(raw, limits)

    monkeypatch.setattr(mime, "_part", counting)
    body = mo_body(*[b"Content-Type: text/plain\r\n\r\nx"] * 10_000)
    with pytest.raises(Refusal) as info:
        translate(body, multipart("b"), ctx)
    assert info.value.code == "too_many_parts"
    assert len(seen) == 50


def test_non_latin1_content_type_is_refused(ctx: TranslateContext) -> None:
    with pytest.raises(Refusal, match="invalid_header"):
        translate(DOC, {"Content-Type": "multipart/mixed; boundary=\u2603"}, ctx)


def test_media_without_a_store_is_refused_as_ours() -> None:
    with pytest.raises(Refusal) as info:
        translate(DOC, DOC_HEADERS, TranslateContext())
    assert (info.value.code, info.value.status) == ("no_media_store", 500)
    # Without media parts no store is needed.
    [event] = translate(
        mo_body(b"Content-Type: text/plain\r\n\r\nhi"), multipart("b"), TranslateContext()
    )
    assert event.text == "hi"


def test_store_failure_is_retryable() -> None:
    class FullDisk:
        def store(self, content: bytes, content_type: str | None, filename: str | None) -> Media:
            raise OSError(28, "No space left on device")

    with pytest.raises(Refusal) as info:
        translate(DOC, DOC_HEADERS, TranslateContext(media_store=FullDisk()))
    assert (info.value.code, info.value.status) == ("media_store_failed", 503)


def test_module_shape() -> None:
    assert PROVIDER.name == openmarket.NAME == "openmarket"
    assert PROVIDER.translate is openmarket.translate
