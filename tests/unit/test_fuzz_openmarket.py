"""Property tests: whatever OpenMarket (or anyone) posts, the parser answers records or Refusal.

Records that do come out must fit the Avro schema, and media must be stored byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.callback import Limits, Refusal, TranslateContext
from connector.codec import current_schema
from connector.media import FilesystemMediaStore
from connector.providers.openmarket import PROVIDER
from connector.record import MmsEvent
from tests.helpers import callback, payload

SCHEMA = fastavro.parse_schema(json.loads(current_schema()))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# RFC 2046 boundary characters; a space may not end one.
BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
boundaries = st.text(BCHARS, min_size=1, max_size=70).filter(lambda b: not b.endswith(" "))

VALID = [
    (payload("openmarket", "mo_doc_example.txt"), "multipart/mixed; boundary=mimeboundary "),
    (
        payload("openmarket", "mo_crlf_preamble.eml"),
        'multipart/mixed; boundary="----=_Part_4421_1871.1718031234"',
    ),
    (payload("openmarket", "mo_several_images.eml"), "multipart/mixed; boundary=b1"),
    (payload("openmarket", "mo_lf_unterminated.txt"), "multipart/mixed; boundary=x"),
    (payload("openmarket", "report_rejected.json"), "application/json"),
    (payload("openmarket", "report_delivered.json"), "application/json"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FilesystemMediaStore:
    return FilesystemMediaStore(tmp_path_factory.mktemp("media"))


def contexts(store: FilesystemMediaStore) -> st.SearchStrategy[TranslateContext]:
    # Mostly the defaults; sometimes limits small enough to be hit.
    small = st.builds(Limits, max_parts=st.integers(1, 8), max_part_bytes=st.integers(1, 2048))
    return st.builds(
        TranslateContext,
        default_country=st.sampled_from([None, "US", "GB", "AU"]),
        limits=st.one_of(st.just(Limits()), st.just(Limits()), small),
        media_store=st.just(store),
    )


def check(body: bytes, content_type: str, ctx: TranslateContext) -> list[MmsEvent]:
    """Translate; anything but a Refusal fails the test, and records must fit the schema."""
    try:
        events = PROVIDER.translate(callback(body, {"Content-Type": content_type}), ctx)
    except Refusal as refusal:
        assert refusal.code and refusal.status in (400, 413, 500, 503)
        return []
    for event in events:
        assert fastavro.validation.validate(event.to_avro(), SCHEMA, raise_errors=True)
        assert event.owner
    return events


content_types = st.one_of(
    boundaries.map(lambda b: f"multipart/mixed; boundary={b}"),
    boundaries.map(lambda b: f'Multipart/Related; type=x; BOUNDARY="{b}"'),
    st.sampled_from(["application/json", "", "text/plain", "multipart/mixed", "multipart/x;="]),
    st.text(max_size=60),
)


@FUZZ
@given(body=st.binary(max_size=3000), content_type=content_types, data=st.data())
def test_random_bytes(
    body: bytes, content_type: str, data: st.DataObject, store: FilesystemMediaStore
) -> None:
    check(body, content_type, data.draw(contexts(store)))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str]:
    body, content_type = draw(st.sampled_from(VALID))
    buf = bytearray(body)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(buf)))
        match draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat"])):
            case "flip" if at < len(buf):
                buf[at] ^= 1 << draw(st.integers(0, 7))
            case "truncate":
                del buf[at:]
            case "insert":
                buf[at:at] = draw(
                    st.sampled_from([b"\r\n", b"\n", b"--", b"=", b" ", b":", b"\r\n\r\n"])
                    | st.binary(max_size=8)
                )
            case "delete":
                del buf[at : at + draw(st.integers(1, 16))]
            case "repeat":
                buf[at:at] = buf[at : at + draw(st.integers(1, 200))]
    return bytes(buf), content_type


@FUZZ
@given(sample=mutated(), data=st.data())
def test_mutated_valid_bodies(
    sample: tuple[bytes, str], data: st.DataObject, store: FilesystemMediaStore
) -> None:
    check(*sample, data.draw(contexts(store)))


# Mostly headers a sender would write, in any case, sometimes anything at all.
sensible_headers = st.sampled_from(
    [("Content-Type", "text/plain"), ("content-type", "text/plain; charset=utf-8"),
     ("Content-Type", "text/plain; charset=utf-16"), ("Content-Type", 'text/plain; charset="x-no"'),
     ("Content-Type", "text/plain; charset=idna"), ("CONTENT-TYPE", "image/jpeg"),
     ("Content-Type", "application/smil"), ("Content-Transfer-Encoding", "base64"),
     ("content-transfer-encoding", "BASE64"), ("Content-Transfer-Encoding", "7bit"),
     ("Content-Transfer-Encoding", "quoted-printable"), ("Content-Id", "<a.jpg>"),
     ("Content-ID", "main"), ("Content-Disposition", 'attachment; filename="a.png"'),
     ("Content-Location", "http://h/a/b.gif"), ("X-Other", "1")]
)  # fmt: skip
any_headers = st.tuples(
    st.text(max_size=20), st.text(max_size=40).map(lambda s: s.replace("\n", " "))
)
part_headers = st.lists(st.one_of(sensible_headers, sensible_headers, any_headers), max_size=5)
json_part_headers = st.lists(
    st.sampled_from([("Content-Id", "main"), ("Content-ID", "<main>"), ("X-Other", "1")])
    | any_headers,
    max_size=2,
)
part_bodies = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(base64.encodebytes),
    st.text(max_size=100).map(str.encode),
)
# A valid MO, with some fields replaced by anything.
json_details = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["MO", "mo", "REPORT", "X", ""]),
        "moId": st.integers(0, 2**64 - 1),
        "source": st.sampled_from(["447800000001", "14155550123", "88600"]),
        "destinations": st.sampled_from([["88600"], ["61480000000"], "88600"]),
        "date": st.sampled_from(["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+0530"]),
    },
    optional={
        "ccs": st.lists(st.text(max_size=14), max_size=2),
        "subject": st.text(max_size=30),
        "userAgent": st.text(max_size=20),
        "mobileOperatorId": st.integers(),
    },
).flatmap(
    lambda d: (
        st.dictionaries(
            st.sampled_from(sorted(d)),
            st.none()
            | st.integers()
            | st.floats()
            | st.text(max_size=20)
            | st.lists(st.integers()),
            max_size=2,
        ).map(lambda bad: {**d, **bad})
        | st.just(d)
    )
)


@st.composite
def multiparts(draw: st.DrawFn) -> tuple[bytes, str]:
    boundary = draw(boundaries)
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    dash = b"--" + boundary.encode()
    out = [draw(st.sampled_from([b"", b"preamble" + nl, nl]))]
    json_type = draw(st.sampled_from(["application/json", "APPLICATION/JSON; charset=utf-8"]))
    first = json.dumps(draw(json_details)).encode()
    parts = [([("Content-Type", json_type), *draw(json_part_headers)], first)]
    parts += draw(st.lists(st.tuples(part_headers, part_bodies), max_size=6))
    for headers, body in parts:
        out.append(dash + nl)
        out.extend(f"{name}: {value}".encode() + nl for name, value in headers)
        if draw(st.booleans()):
            out.append(nl)  # the blank line real MIME has; the docs draw none
        out.append(body + nl)
    if draw(st.booleans()):
        out.append(dash + b"--" + nl)
    return b"".join(out), f'multipart/mixed; boundary="{boundary}"'


@FUZZ
@given(sample=multiparts(), data=st.data())
def test_generated_multipart(
    sample: tuple[bytes, str], data: st.DataObject, store: FilesystemMediaStore
) -> None:
    check(*sample, data.draw(contexts(store)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(["mtId", "status", "date", "outcomeId", "outcomeDescription", "other"]),
        json_values,
    ),
    kind=st.sampled_from(["REPORT", "report", "MO", 1]),
    data=st.data(),
)
def test_reports(
    fields: dict[str, object], kind: object, data: st.DataObject, store: FilesystemMediaStore
) -> None:
    check(
        json.dumps({"type": kind, **fields}).encode(),
        "application/json",
        data.draw(contexts(store)),
    )


@FUZZ
@given(
    boundary=boundaries,
    nl=st.sampled_from(["\r\n", "\n"]),
    blank=st.booleans(),
    closed=st.booleans(),
    media=st.lists(
        st.tuples(
            st.binary(min_size=1, max_size=400),
            st.sampled_from(["base64", "Base64", None]),
            st.integers(4, 80),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_media_round_trip(
    boundary: str,
    nl: str,
    blank: bool,
    closed: bool,
    media: list[tuple[bytes, str | None, int]],
    store: FilesystemMediaStore,
) -> None:
    """Whatever the framing, each part's bytes are stored exactly, in order."""
    details = {"type": "MO", "moId": 9, "source": "447800000001", "destinations": ["88600"]}
    lines = [f"--{boundary}", "Content-Type: application/json", "Content-Id: main"]
    lines += [""] * blank + [json.dumps(details)]
    for i, (content, encoding, width) in enumerate(media):
        encoded = base64.b64encode(content).decode()
        lines += [f"--{boundary}", "Content-Type: application/octet-stream", f"Content-Id: p{i}"]
        lines += [f"Content-Transfer-Encoding: {encoding}"] * (encoding is not None)
        lines += [""] * blank + [encoded[j : j + width] for j in range(0, len(encoded), width)]
    lines += [f"--{boundary}--"] * closed
    body = (nl.join(lines) + nl).encode()
    [event] = check(
        body, f'multipart/mixed; boundary="{boundary}"', TranslateContext(media_store=store)
    )
    assert [m.filename for m in event.media] == [f"p{i}" for i in range(len(media))]
    for stored, (content, _, _) in zip(event.media, media, strict=True):
        assert stored.sha256 == hashlib.sha256(content).hexdigest()
        assert Path(stored.uri.removeprefix("file://")).read_bytes() == content
