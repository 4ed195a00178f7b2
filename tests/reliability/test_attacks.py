"""Hostile requests through HTTP against the real app: refused cleanly, never expanded, never
published, never echoing a secret or a traceback."""

from __future__ import annotations

import base64
import dataclasses
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from connector.config import Config
from connector.logs import JsonFormatter
from connector.providers import PROVIDERS
from tests.helpers import payload
from tests.live import Record, running

pytestmark = pytest.mark.integration

ENV_PASSWORD = "MMS_TEST_ATTACK_PASSWORD"
ENV_TOKEN = "MMS_TEST_ATTACK_TOKEN"
PASSWORD = "pw-" + uuid.uuid4().hex
TOKEN = "tok-" + uuid.uuid4().hex
SECRETS = (PASSWORD, TOKEN)
MAX_BODY = 64 * 1024
ALLOWED = "203.0.113.0/24"

GOOD_BASIC = {"Authorization": "Basic " + base64.b64encode(f"bw:{PASSWORD}".encode()).decode()}
LOCAL_FILE_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE postback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<postback><origin>MMS_MO</origin><tracking-id>MMS_MO_xxe</tracking-id><to>28444</to>
<keyword>&xxe;</keyword></postback>"""


def fetching_xxe(port: int) -> list[tuple[str, bytes]]:
    """XXE bodies that would make the parser fetch from 127.0.0.1:port."""
    return [
        (
            "external DTD",
            f"""<?xml version="1.0"?>
<!DOCTYPE postback SYSTEM "http://127.0.0.1:{port}/evil.dtd">
<postback><origin>MMS_MO</origin><tracking-id>MMS_MO_dtd</tracking-id><to>28444</to></postback>
""".encode(),
        ),
        (
            "parameter entity",
            f"""<?xml version="1.0"?>
<!DOCTYPE postback [<!ENTITY % remote SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %remote;]>
<postback><origin>MMS_MO</origin><tracking-id>MMS_MO_pe</tracking-id><to>28444</to></postback>
""".encode(),
        ),
        (
            "external entity",
            f"""<?xml version="1.0"?>
<!DOCTYPE postback [<!ENTITY ext SYSTEM "http://127.0.0.1:{port}/secret">]>
<postback><origin>MMS_MO</origin><tracking-id>MMS_MO_ext</tracking-id><to>28444</to>
<keyword>&ext;</keyword></postback>
""".encode(),
        ),
    ]


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    monkeypatch.setenv(ENV_TOKEN, TOKEN)


@pytest.fixture
def app(make_config: Callable[..., Config], topic: str) -> Iterator[str]:
    config = make_config(
        {
            "bandwidth-v2": {
                "enabled": True,
                "topic": topic,
                "auth": {"basic": {"username": "bw", "password": {"env": ENV_PASSWORD}}},
                "read_timeout_seconds": 1,
            },
            "sinch": {
                "enabled": True,
                "topic": topic,
                "auth": {"token": {"in_path": True, "value": {"env": ENV_TOKEN}}},
                "max_body_bytes": MAX_BODY,
            },
            "openmarket": {"enabled": True, "topic": topic},
            # No trusted proxy: X-Forwarded-For is whatever the client says, so it is ignored.
            "bandwidth-v1": {"enabled": True, "topic": topic, "auth": {"allow_cidrs": [ALLOWED]}},
        }
    )
    with running(config) as base:
        yield base


def post(url: str, body: bytes, **headers: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = httpx.post(url, content=body, headers=headers, timeout=30)
    return reply, time.monotonic() - started


def assert_clean_error(reply: httpx.Response) -> None:
    """An error reply: small, names the problem, no secret, no stack trace."""
    text = reply.text
    assert len(reply.content) < 2048, text[:200]
    assert "Traceback" not in text and 'File "' not in text
    assert not any(secret in text for secret in SECRETS)


def test_attack_payloads(
    app: str,
    records: Callable[[str], list[Record]],
    topic: str,
    dlq_topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="connector")
    sinch = f"{app}/callbacks/sinch/{TOKEN}"
    expected_letters: list[tuple[str, str, bytes]] = []

    # XML: DOCTYPEs refused before any declaration is read: nothing fetched, nothing expanded.
    for name, body in [
        ("external DTD (payload file)", payload("sinch", "external_dtd.xml")),
        *fetching_xxe(9),
        ("local file entity", LOCAL_FILE_XXE),
        ("billion laughs", payload("sinch", "billion_laughs.xml")),
    ]:
        reply, took = post(sinch, body, **{"Content-Type": "application/xml"})
        # Sinch retries anything but 200: once dead-lettered, a 200 naming the refusal.
        assert reply.status_code == 200, (name, reply.text)
        assert reply.json()["error"] == "xml_doctype_forbidden", name
        assert took < 3, f"{name}: {took:.1f} s"
        assert_clean_error(reply)
        assert "lollol" not in reply.text and "root:" not in reply.text
        expected_letters.append(("sinch", "xml_doctype_forbidden", body))

    # Deep nesting: refused by depth, not by the stack.
    deep_xml = b"<postback>" + b"<a>" * 100 + b"x" + b"</a>" * 100 + b"</postback>"
    reply, _ = post(sinch, deep_xml, **{"Content-Type": "application/xml"})
    assert (reply.status_code, reply.json()["error"]) == (200, "xml_too_deep")
    expected_letters.append(("sinch", "xml_too_deep", deep_xml))
    bandwidth = f"{app}/callbacks/bandwidth-v2"
    # Past the depth limit our check refuses it; past the value budget (10,000) that refuses
    # first, before parsing.
    for depth, status, code in (
        (33, 400, "json_too_deep"),
        (1000, 400, "json_too_deep"),
        (100_000, 413, "too_many_elements"),
    ):
        deep_json = b"[" * depth + b"]" * depth
        reply, took = post(bandwidth, deep_json, **GOOD_BASIC)
        assert (reply.status_code, reply.json()["error"]) == (status, code), reply.text
        assert took < 3
        assert_clean_error(reply)
        expected_letters.append(("bandwidth-v2", code, deep_json))

    # 10,000 parts: the reader stops at the limit. OpenMarket retries any non-200, so once the
    # raw callback is safe in the dead-letter topic it gets its 200 (and no pointless retries).
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(10_000))
    many = parts + b"--b--\r\n"
    reply, took = post(
        f"{app}/callbacks/openmarket", many, **{"Content-Type": "multipart/mixed; boundary=b"}
    )
    assert (reply.status_code, reply.content) == (200, b"")
    assert took < 3, f"10,000 parts took {took:.1f} s"
    expected_letters.append(("openmarket", "too_many_parts", many))

    # Oversized bodies, announced or streamed: refused before translation, the headers kept as
    # a dead letter without the body, and Sinch's dead-letter answer (200 naming the refusal:
    # it retries anything else).
    big = b"<postback>" + b"x" * MAX_BODY + b"</postback>"
    reply, _ = post(sinch, big, **{"Content-Type": "application/xml"})
    assert (reply.status_code, reply.json()["error"]) == (200, "body_too_large")
    expected_letters.append(("sinch", "body_too_large", b""))

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * (MAX_BODY // 4)

    streamed = httpx.post(sinch, content=chunks(), timeout=30)
    assert "content-length" not in streamed.request.headers
    assert (streamed.status_code, streamed.json()["error"]) == (200, "body_too_large")
    assert_clean_error(streamed)
    expected_letters.append(("sinch", "body_too_large", b""))

    # Wrong or missing credentials: 401, a log line, nothing kept.
    wrong_basic = {"Authorization": "Basic " + base64.b64encode(b"bw:guess-pw-123").decode()}
    for url, headers in (
        (bandwidth, {}),
        (bandwidth, wrong_basic),
        (bandwidth, {"Authorization": "Basic %%%not-base64"}),
        (bandwidth, {"Authorization": f"Bearer {PASSWORD}"}),
        (f"{app}/callbacks/sinch/guess-tok-456", {}),
    ):
        body = payload("bandwidth_v2", "message_sending.json")
        reply, _ = post(url, body, **headers)
        assert reply.status_code == 401, (url, headers, reply.text)
        assert reply.json()["error"] == "unauthorized"
        if url == bandwidth:
            assert reply.headers["www-authenticate"] == 'Basic realm="mms-connector"'
        assert_clean_error(reply)
        assert "guess-" not in reply.text
    # A path without the token is no route at all.
    reply, _ = post(f"{app}/callbacks/sinch", payload("sinch", "mms_mo.xml"))
    assert reply.status_code == 404

    # X-Forwarded-For from a peer that is not a trusted proxy proves nothing.
    v1 = f"{app}/callbacks/bandwidth-v1"
    for spoof in ("203.0.113.9", "203.0.113.9, 203.0.113.10"):
        reply, _ = post(
            v1, payload("bandwidth_v1", "inbound_mms.json"), **{"X-Forwarded-For": spoof}
        )
        assert reply.status_code == 403, reply.text
        assert reply.json()["error"] == "forbidden"
        assert_clean_error(reply)

    # Slow body (slowloris): the per-request read timeout ends it.
    status_line, took = slow_body(app, "/callbacks/bandwidth-v2", GOOD_BASIC["Authorization"])
    assert status_line.startswith(b"HTTP/1.1 408"), status_line
    assert 0.9 < took < 5

    # Nothing was published; exactly the authenticated, untranslatable bodies were kept.
    assert records(topic) == []
    letters = records(dlq_topic)
    assert [(r.value["provider"], r.value["error_code"]) for r in letters] == [
        (p, c) for p, c, _ in expected_letters
    ]
    assert all(
        r.value["body"] == body for r, (_, _, body) in zip(letters, expected_letters, strict=True)
    )
    assert all(r.value["route"] == "/callbacks/sinch" for r in letters if r.key == "sinch")
    for r in letters:
        assert not any(s in str(r.value["headers"]) for s in SECRETS)
        assert "authorization" not in r.value["headers"]

    # Logged: each refusal, never a secret (the token in the path included).
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    outcomes = [getattr(r, "outcome", None) for r in caplog.records]
    assert outcomes.count("unauthorized") == 7  # 5 x 401, 2 x 403
    assert outcomes.count("refused") == 1  # the slow body
    assert not [line for line in lines if any(s in line for s in SECRETS)]
    assert not [line for line in lines if "guess-" in line]


def slow_body(base: str, path: str, authorization: str) -> tuple[bytes, float]:
    """Announce a 1000-byte body, send 10 bytes, then nothing: the status line and when."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"type":'.encode()
        )
        started = time.monotonic()
        reply = sock.recv(4096)
        took = time.monotonic() - started
    return reply.split(b"\r\n", 1)[0], took


def test_forwarded_for_through_a_trusted_proxy(
    make_config: Callable[..., Config], records: Callable[[str], list[Record]], topic: str
) -> None:
    """The control for the spoofing check: behind a trusted proxy (here the loopback peer), the
    nearest untrusted hop decides; hops a client put in front of it do not."""
    config = make_config(
        {
            "bandwidth-v1": {
                "enabled": True,
                "topic": topic,
                "auth": {"allow_cidrs": [ALLOWED], "trusted_proxies": ["127.0.0.0/8"]},
            }
        }
    )
    body = payload("bandwidth_v1", "inbound_mms.json")
    with running(config) as base:
        url = f"{base}/callbacks/bandwidth-v1"
        allowed, _ = post(url, body, **{"X-Forwarded-For": "203.0.113.9"})
        via_two_proxies, _ = post(url, body, **{"X-Forwarded-For": "203.0.113.9, 127.0.0.5"})
        spoofed, _ = post(url, body, **{"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
        missing, _ = post(url, body)
    assert allowed.status_code == 200, allowed.text
    assert via_two_proxies.status_code == 200, via_two_proxies.text
    assert spoofed.status_code == 403
    assert missing.status_code == 403
    assert len(records(topic)) == 1  # the two accepted copies are one event


def test_an_unexpected_parser_failure_is_a_clean_400(
    make_config: Callable[..., Config],
    records: Callable[[str], list[Record]],
    topic: str,
    dlq_topic: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parser bug becomes a clean 400 and a dead letter, not a 500 with a stack trace."""

    def broken(_callback: object, _ctx: object) -> list[object]:
        raise KeyError("message")

    monkeypatch.setitem(
        PROVIDERS, "bandwidth-v2", dataclasses.replace(PROVIDERS["bandwidth-v2"], translate=broken)
    )
    config = make_config({"bandwidth-v2": {"enabled": True, "topic": topic}})
    body = payload("bandwidth_v2", "message_sending.json")
    with running(config) as base:
        reply, _ = post(f"{base}/callbacks/bandwidth-v2", body)
    assert reply.status_code == 400
    assert reply.json()["error"] == "untranslatable"
    assert_clean_error(reply)
    assert records(topic) == []
    [letter] = records(dlq_topic)
    assert (letter.value["error_code"], letter.value["body"]) == ("untranslatable", body)
