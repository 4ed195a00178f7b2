"""A local HTTP server standing in for a provider's media host (basic auth on its photo), for
the fetch, mirror and outage tests and `media_host` in tests/conftest.py."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import orjson

from tests.helpers import payload

JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256)) * 4
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
USER, PASSWORD = "api-user", "s3cret-pass"
GOOD_AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class MediaHost(BaseHTTPRequestHandler):
    """Routes standing in for a provider's media host; every request is recorded."""

    server: MediaServer

    def log_message(self, *_args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.server.seen.append(
            (self.path, self.headers.get("Host"), self.headers.get("Authorization"))
        )
        route = self.path.split("?", 1)[0]
        if route == "/photo.jpg":  # basic auth; a wrong Content-Type header
            if self.headers.get("Authorization") != GOOD_AUTH:
                return self._reply(401, b"no")
            return self._reply(200, JPEG, "text/plain")
        if route == "/flaky":  # 500 on the first request, then the content
            self.server.flaky_calls += 1
            return self._reply(500 if self.server.flaky_calls == 1 else 200, PNG, "image/png")
        if route == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(10):  # 100 bytes every 0.3 s: each read is quick, the whole is not
                self.wfile.write(b"x" * 100)
                self.wfile.flush()
                time.sleep(0.3)
            return None
        if route == "/big-declared":
            return self._reply(200, b"x" * 5000)
        if route == "/big-streamed":  # no Content-Length: the cap must stop the stream
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            return None
        if route.startswith("/status/"):
            return self._reply(int(route.rsplit("/", 1)[1]), b"")
        if route == "/redirect":
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if route == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._reply(404, b"")

    def _reply(self, status: int, body: bytes, content_type: str | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class MediaServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog is 5: a mirror fetching 8 media at once had SYNs dropped,
    # retried a second later, and a 1 s fetch timeout hit a 401.
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MediaHost)
        self.seen: list[tuple[str, str | None, str | None]] = []
        self.flaky_calls = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextmanager
def serving(server: MediaServer) -> Iterator[MediaServer]:
    """The server answering on a thread of its own until the block ends."""
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def mo_callback(message_id: str, media: list[str]) -> bytes:
    """A Bandwidth v2 message-received callback with these media URLs."""
    event = orjson.loads(payload("bandwidth_v2", "message_received_mms.json"))[0]
    event["message"]["id"] = message_id
    event["message"]["media"] = media
    return orjson.dumps([event])


def media_fetch(password_var: str, **settings: Any) -> dict[str, Any]:
    """`providers.bandwidth-v2.media_fetch` for this host: its credentials, loopback allowed, and
    no other host ever asked."""
    return {
        "username": USER,
        "password": {"env": password_var},
        "allow_private": True,
        "allowed_hosts": ["127.0.0.1"],
        **settings,
    }
