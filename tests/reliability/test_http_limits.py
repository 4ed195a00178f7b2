"""Limits below the app, against the real connector under uvicorn: oversized request heads,
heads that never finish, idle keep-alive connections, and too many connections."""

from __future__ import annotations

import base64
import contextlib
import logging
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from connector.config import Config
from connector.logs import JsonFormatter
from tests.live import running
from tests.reliability.conftest import bandwidth_callback, metric

pytestmark = pytest.mark.integration

ENV_PASSWORD = "MMS_TEST_LIMITS_PASSWORD"
PASSWORD = "pw-" + uuid.uuid4().hex
AUTHORIZATION = "Basic " + base64.b64encode(f"bw:{PASSWORD}".encode()).decode()
HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 0.5
# 46 bytes, repeated: what made the pre-auth merge of repeated headers quadratic.
REPEATED = b"X-Forwarded-For: 203.0.113.10, 203.0.113.110\r\n"
CALLBACK_PATH = "/callbacks/bandwidth-v2"


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)


def serve(make_config: Callable[..., Config], topic: str, **server: float) -> Config:
    return make_config(
        {
            "bandwidth-v2": {
                "enabled": True,
                "topic": topic,
                "auth": {"basic": {"username": "bw", "password": {"env": ENV_PASSWORD}}},
            }
        },
        server={
            "header_read_timeout_seconds": HEADER_TIMEOUT,
            "keep_alive_timeout_seconds": KEEP_ALIVE,
            **server,
        },
    )


@pytest.fixture
def app(make_config: Callable[..., Config], topic: str) -> Iterator[str]:
    with running(serve(make_config, topic)) as base:
        yield base


def connect(base: str, timeout: float = 10) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # closed with our request unread: what it sent before is all there is
    return data


def send_head(base: str, head: bytes) -> tuple[bytes, float]:
    """Send a request head the server may stop reading; its whole reply and how long it took."""
    started = time.monotonic()
    with connect(base) as sock:
        # Refused before we finished sending: the reply is already on its way.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        reply = read_until_closed(sock)
    return reply, time.monotonic() - started


def status_line(reply: bytes) -> bytes:
    return reply.split(b"\r\n", 1)[0]


def json_body(reply: bytes) -> dict[str, str]:
    body: dict[str, str] = orjson.loads(reply.split(b"\r\n\r\n", 1)[1])
    return body


def header_lines(reply: bytes) -> list[bytes]:
    return reply.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")[1:]


def request_head(*headers: bytes) -> bytes:
    return (
        f"POST {CALLBACK_PATH} HTTP/1.1\r\nHost: mms\r\nContent-Type: application/json\r\n".encode()
        + b"".join(headers)
        + b"Content-Length: 2\r\n\r\n[]"
    )


def peak_rss_growth_mb(action: Callable[[], object]) -> float:
    """How far this process's peak RSS (the server runs in it) rises above its RSS during action."""

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    Path("/proc/self/clear_refs").write_text("5")  # the peak restarts from the current RSS
    before = status("VmRSS")
    action()
    return (status("VmHWM") - before) / 1024


def test_oversized_heads_are_refused_431_without_stalling_the_loop(
    app: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connector")
    lags: list[float] = []
    attacking = threading.Event()
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=app, timeout=10) as client:
            while not done.is_set():
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                if attacking.is_set():
                    lags.append(time.monotonic() - started)
                time.sleep(0.005)

    repeated = request_head(REPEATED * 40_000)
    one_big = request_head(b"X-Big: " + b"b" * (1 << 20) + b"\r\n")
    huge = request_head(b"X-Huge: " + b"h" * (50 << 20) + b"\r\n")
    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.2)
        attacking.set()
        replies = []
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # keep the loop busy with refusals for a second
            replies += [send_head(app, repeated), send_head(app, one_big)]
        growth = peak_rss_growth_mb(lambda: replies.append(send_head(app, huge)))
    finally:
        done.set()
        prober.join()

    for reply, took in replies:
        assert status_line(reply) == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert b"connection: close" in header_lines(reply)
        assert json_body(reply)["error"] == "headers_too_large"
        assert took < 0.5
    # /healthz kept answering promptly while the refusals went on.
    assert len(lags) >= 10
    assert max(lags) < 0.1, f"/healthz took {max(lags) * 1000:.0f} ms"
    # A 50 MB header used to be buffered whole (+92 MB peak RSS); now ~32 KB of it is read.
    assert growth < 20, f"peak RSS +{growth:.0f} MB"

    # One short line per refusal, without any header value.
    refusals = [r for r in caplog.records if r.name == "connector.http"]
    assert len(refusals) == len(replies)
    formatter = JsonFormatter()
    for record in refusals:
        line = formatter.format(record)
        assert len(line) < 300, line
        assert "203.0.113" not in line and "bbbb" not in line and "hhhh" not in line
    assert {getattr(r, "header_name", None) for r in refusals} == {"X-Forwarded-For", None}
    metrics = httpx.get(f"{app}/metrics").text
    assert metric(metrics, "mms_http_refused_total", reason="headers_too_large") >= len(replies)


# request_head() adds 103 bytes and 3 headers to the ones given; an X-Pad line is 9 bytes + value.
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (REPEATED * 97, b"HTTP/1.1 401"),
        (REPEATED * 98, b"HTTP/1.1 431"),
        (b"X-Pad: " + b"p" * (32_768 - 103 - 9) + b"\r\n", b"HTTP/1.1 401"),
        (b"X-Pad: " + b"p" * (32_768 - 103 - 8) + b"\r\n", b"HTTP/1.1 431"),
    ],
    ids=["100-headers", "101-headers", "32768-bytes", "32769-bytes"],
)
def test_header_limits_are_exact(app: str, headers: bytes, expected: bytes) -> None:
    """Up to the limits a head reaches the app (401: no credentials); one past them it does not."""
    reply, _ = send_head(app, request_head(headers))
    assert status_line(reply).startswith(expected)


def test_a_head_within_the_limit_with_its_body_in_the_same_read_is_served(app: str) -> None:
    """A head that ends inside the header budget is served even when the read is larger (the
    body follows it in the same packet)."""
    body = bandwidth_callback("limits-" + uuid.uuid4().hex)
    pad = b"X-Pad: " + b"p" * 30_000 + b"\r\n"
    padded = body + b" " * (100_000 - len(body))  # JSON allows trailing whitespace
    head = (
        f"POST {CALLBACK_PATH} HTTP/1.1\r\nHost: mms\r\nAuthorization: {AUTHORIZATION}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(padded)}\r\n"
        "Connection: close\r\n"
    ).encode()
    reply, _ = send_head(app, head + pad + b"\r\n" + padded)
    assert status_line(reply) == b"HTTP/1.1 200 OK", reply[:300]


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /callbacks/bandw", b"POST /callbacks/bandwidth-v2 HTTP/1.1\r\nHost: mms\r\nX-A"],
    ids=["nothing", "partial-request-line", "partial-headers"],
)
def test_an_unfinished_head_is_answered_408_and_closed(app: str, sent: bytes) -> None:
    with connect(app) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        reply = read_until_closed(sock)
        took = time.monotonic() - started
    assert status_line(reply) == b"HTTP/1.1 408 Request Timeout"
    assert json_body(reply)["error"] == "header_timeout"
    assert HEADER_TIMEOUT - 0.1 < took < HEADER_TIMEOUT + 0.5


def test_a_head_trickled_byte_by_byte_is_still_cut_at_the_timeout(app: str) -> None:
    """Slowloris: each byte arriving in time does not restart the clock."""
    head = b"POST /callbacks/bandwidth-v2 HTTP/1.1\r\nHost: mms\r\nX-Slow: 1\r\n"
    with connect(app) as sock:
        started = time.monotonic()
        reply = b""
        for byte in head:
            if select.select([sock], [], [], 0.1)[0]:  # the server spoke: read before sending on
                reply = read_until_closed(sock)
                break
            sock.sendall(bytes([byte]))
    took = time.monotonic() - started
    assert status_line(reply) == b"HTTP/1.1 408 Request Timeout"
    assert took < HEADER_TIMEOUT + 0.5


def test_the_next_head_on_a_kept_alive_connection_is_timed_from_the_response(app: str) -> None:
    with connect(app) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: mms\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # stops the keep-alive clock, not ours
        reply = read_until_closed(sock)
        took = time.monotonic() - answered
    assert status_line(reply) == b"HTTP/1.1 408 Request Timeout"
    assert HEADER_TIMEOUT - 0.1 < took < HEADER_TIMEOUT + 0.5


def test_an_idle_keep_alive_connection_is_closed(app: str) -> None:
    with connect(app) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: mms\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        rest = read_until_closed(sock)
        took = time.monotonic() - answered
    assert rest == b""  # closed quietly: nothing was asked
    assert KEEP_ALIVE - 0.1 < took < KEEP_ALIVE + 0.4


def test_a_slow_body_in_time_is_not_cut_by_the_header_timeout(app: str) -> None:
    body = bandwidth_callback("limits-" + uuid.uuid4().hex)
    pieces = [body[i : i + len(body) // 5 + 1] for i in range(0, len(body), len(body) // 5 + 1)]
    with connect(app) as sock:
        sock.sendall(
            f"POST {CALLBACK_PATH} HTTP/1.1\r\nHost: mms\r\nAuthorization: {AUTHORIZATION}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        started = time.monotonic()
        for piece in pieces:  # 2.5 s in all: past the header timeout, within read_timeout
            time.sleep(2.5 / len(pieces))
            sock.sendall(piece)
        reply = sock.recv(65536)
        took = time.monotonic() - started
    assert took > 2 * HEADER_TIMEOUT
    assert status_line(reply) == b"HTTP/1.1 200 OK", reply[:300]
    assert json_body(reply)["status"] == "accepted"


def test_connections_past_the_cap_are_answered_503_then_served_again(
    make_config: Callable[..., Config], topic: str
) -> None:
    config = serve(
        make_config,
        topic,
        max_connections=5,
        keep_alive_timeout_seconds=30,
        header_read_timeout_seconds=30,
    )
    with running(config) as base:
        held = [connect(base) for _ in range(5)]
        try:
            for sock in held:  # each one accepted and served, then kept alive
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: mms\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            refused = []
            for _ in range(3):
                started = time.monotonic()
                reply, _ = send_head(base, b"GET /healthz HTTP/1.1\r\nHost: mms\r\n\r\n")
                refused.append((reply, time.monotonic() - started))
        finally:
            for sock in held:
                sock.close()
        for reply, took in refused:
            assert status_line(reply) == b"HTTP/1.1 503 Service Unavailable"
            assert b"retry-after: 5" in header_lines(reply)
            assert json_body(reply)["error"] == "too_many_connections"
            assert took < 0.5
        # Once the held connections are gone, new ones are served.
        deadline = time.monotonic() + 5
        while True:
            reply, _ = send_head(
                base, b"GET /healthz HTTP/1.1\r\nHost: mms\r\nConnection: close\r\n\r\n"
            )
            if status_line(reply) == b"HTTP/1.1 200 OK" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status_line(reply) == b"HTTP/1.1 200 OK"
        metrics = httpx.get(f"{base}/metrics").text
        assert metric(metrics, "mms_http_refused_total", reason="too_many_connections") >= 3
