"""How `serve` runs uvicorn: process-wide tuning (in a child process: it is global), and the
HTTP limits below the app, fed to the protocol directly."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import uvicorn
from uvicorn.server import ServerState

from connector.config import Config
from connector.http_limits import HttpLimits, reply
from connector.server import uvicorn_config


def test_tune_memory_sets_rare_collections_and_freezes_start_up_objects() -> None:
    code = (
        "import gc; from connector.server import tune_memory; tune_memory(); "
        "print(gc.get_threshold(), gc.get_freeze_count() > 10000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(50000, 20, 20) True"


def uvicorn_for(**server: object) -> uvicorn.Config:
    config = uvicorn_config(Config.model_validate({"server": server}), "127.0.0.1", 8080)
    config.load()
    return config


def test_server_limits_reach_uvicorn() -> None:
    config = uvicorn_for(
        max_header_bytes=4096,
        max_header_count=20,
        header_read_timeout_seconds=2.5,
        max_connections=7,
        keep_alive_timeout_seconds=1.5,
    )
    assert config.http_protocol_class.limits == HttpLimits(4096, 20, 2.5, 7)
    assert config.timeout_keep_alive == 1.5
    assert config.ws_protocol_class is None  # no WebSocket handshake path around the limits


def test_server_limit_defaults() -> None:
    server = Config().server
    assert (server.max_header_bytes, server.max_header_count, server.max_connections) == (
        32768,
        100,
        1000,
    )
    assert (server.header_read_timeout_seconds, server.keep_alive_timeout_seconds) == (10, 5)


def test_refusal_reply_is_one_complete_json_response() -> None:
    raw = reply(503, "too_many_connections", "retry later", "5")
    head, body = raw.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert sorted(lines[1:]) == [
        "connection: close",
        f"content-length: {len(body)}",
        "content-type: application/json",
        "retry-after: 5",
    ]
    assert orjson.loads(body) == {"error": "too_many_connections", "detail": "retry later"}


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("203.0.113.5", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def feed(reads: list[bytes], **server: object) -> FakeTransport:
    """A connection of the connector's protocol fed these reads; what it wrote back."""

    async def run() -> FakeTransport:
        config = uvicorn_for(**server)
        protocol = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}
        )
        transport = FakeTransport()
        protocol.connection_made(transport)
        for data in reads:
            protocol.data_received(data)
        for _ in range(10):  # let a started request (GET /healthz) answer
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    return asyncio.run(run())


def head_of(size: int) -> bytes:
    """A GET /healthz head of exactly `size` bytes."""
    start, end = b"GET /healthz HTTP/1.1\r\nX-Pad: ", b"\r\nConnection: close\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def test_the_head_budget_counts_every_read() -> None:
    # Fed a byte at a time (a slow client): the limit is exact.
    served = feed([bytes([b]) for b in head_of(1024)], max_header_bytes=1024)
    assert served.written.startswith(b"HTTP/1.1 200")
    refused = feed([bytes([b]) for b in head_of(1025)], max_header_bytes=1024)
    assert refused.written.startswith(b"HTTP/1.1 431") and refused.closed


def test_a_head_ending_within_the_budget_is_served_though_its_read_is_larger() -> None:
    body = b"x" * 5000
    head = (
        head_of(1000)
        .replace(b"GET", b"PUT", 1)
        .replace(b"Connection", b"Content-Length: 5000\r\nConnection", 1)
    )
    served = feed([head + body], max_header_bytes=1024)
    assert served.written.startswith(b"HTTP/1.1 405")  # reached the app: /healthz is GET only


def test_too_many_headers_never_reach_the_app() -> None:
    head = b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 11 + b"\r\n"
    refused = feed([head], max_header_count=10)
    assert refused.written.startswith(b"HTTP/1.1 431")
    assert b"HTTP/1.1 200" not in refused.written
    served = feed(
        [b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 10 + b"\r\n"], max_header_count=10
    )
    assert served.written.startswith(b"HTTP/1.1 200")
