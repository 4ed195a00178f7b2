"""Dead-letter records: the body kept byte-exact, the headers kept without credentials."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import fastavro
import orjson
import pytest

from connector import dead_letters
from connector.codec import DEAD_LETTER_SCHEMA, current_schema
from connector.providers.contract import Callback, Refusal

RECEIVED_AT = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
# What the app hands over: header names lower-cased.
HEADERS = {
    "host": "connector.example.com",
    "content-type": "application/json; charset=utf-8",
    "user-agent": "BandwidthAPI/v2",
    "x-request-id": "req-42",
    "x-forwarded-for": "203.0.113.9",
    "authorization": "Basic Ync6c2VjcmV0",
    "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
    "cookie": "session=abc",
    "x-callback-token": "tok-123",
}
# Not UTF-8, a NUL, CRLF, trailing whitespace: none of it may be normalised.
BODY = b'\xef\xbb\xbf[{"type":"message-received"\x00}]\r\n\xff\xfe  \n'
REFUSAL = Refusal("invalid_json", "body is not valid JSON: unexpected character")


def letter() -> dict[str, object]:
    callback = Callback(BODY, dict(HEADERS), RECEIVED_AT, HEADERS["content-type"])
    return dead_letters.record("bandwidth-v2", "/callbacks/bandwidth-v2", callback, REFUSAL)


def test_only_the_headers_replay_and_tracing_need_are_kept() -> None:
    assert letter()["headers"] == {
        "host": "connector.example.com",
        "content-type": "application/json; charset=utf-8",
        "user-agent": "BandwidthAPI/v2",
        "x-request-id": "req-42",
        "x-forwarded-for": "203.0.113.9",
    }


def test_credentials_in_headers_nobody_listed_are_not_kept() -> None:
    # These carried real credentials past the old blocklist of three names.
    headers = {
        **HEADERS,
        "x-forwarded-authorization": "Basic Ync6c2VjcmV0",
        "x-api-key": "key-123",
        "x-amz-security-token": "sts-123",
    }
    callback = Callback(BODY, headers, RECEIVED_AT, HEADERS["content-type"])
    record = dead_letters.record("bandwidth-v2", "/callbacks/bandwidth-v2", callback, REFUSAL)
    text = orjson.dumps(record["headers"]).decode()
    assert not any(secret in text for secret in ("Ync6c2VjcmV0", "key-123", "sts-123", "tok-123"))


def test_body_is_kept_byte_exact_with_its_hash() -> None:
    record = letter()
    assert record["body"] == BODY
    assert record["body_sha256"] == hashlib.sha256(BODY).hexdigest()


def test_record_carries_provider_route_error_and_time() -> None:
    record = letter()
    assert {k: record[k] for k in ("provider", "route", "error_code", "error_detail")} == {
        "provider": "bandwidth-v2",
        "route": "/callbacks/bandwidth-v2",
        "error_code": "invalid_json",
        "error_detail": "body is not valid JSON: unexpected character",
    }
    assert record["received_at"] == RECEIVED_AT


def test_record_round_trips_through_the_avro_schema_byte_exact() -> None:
    schema = fastavro.parse_schema(orjson.loads(current_schema(DEAD_LETTER_SCHEMA)))
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, letter())
    out.seek(0)
    decoded = fastavro.schemaless_reader(out, schema, schema)
    assert isinstance(decoded, dict)
    assert decoded["body"] == BODY
    assert decoded["received_at"] == RECEIVED_AT
    assert "authorization" not in decoded["headers"]

    # ... and becomes the same callback again for replay.
    again = dead_letters.callback(decoded)
    assert again.body == BODY
    assert again.content_type == HEADERS["content-type"]
    assert again.received_at == RECEIVED_AT
    assert again.headers["x-request-id"] == "req-42"


def test_a_body_too_large_for_kafka_goes_to_the_media_store(tmp_path) -> None:
    from connector.media import FilesystemMediaStore

    store = FilesystemMediaStore(tmp_path)
    big = b"--b\r\n" + b"x" * 2_000_000
    callback = Callback(big, {"content-type": "multipart/mixed; boundary=b"}, RECEIVED_AT)
    record = dead_letters.record("openmarket", "/o", callback, REFUSAL, store, 900_000)
    assert record["body"] == b""
    assert record["body_sha256"] == hashlib.sha256(big).hexdigest()
    assert record["body_uri"].startswith("file://")
    # Replay reads it back from the store, byte-exact.
    assert dead_letters.callback(record, store).body == big
    small = dead_letters.record(
        "openmarket", "/o", Callback(b"{}", {}, RECEIVED_AT), REFUSAL, store, 900_000
    )
    assert (small["body"], small["body_uri"]) == (b"{}", None)


def test_the_store_only_gives_back_what_it_holds(tmp_path) -> None:
    from connector.media import FilesystemMediaStore

    store = FilesystemMediaStore(tmp_path / "media")
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    with pytest.raises(ValueError, match="not in the media store"):
        store.load(outside.as_uri())
