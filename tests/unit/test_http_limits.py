"""The protocol below the app, driven with a recording transport: a response is one write."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.server import ServerState

from connector.callbacks import BODY_RECEIVED
from connector.http_limits import BODY_BATCH_BYTES, HttpLimits, protocol_class

LIMITS = HttpLimits(
    max_header_bytes=8192, max_header_count=100, header_read_timeout=5, max_connections=10
)


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8080)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    body = b"got " + message.get("body", b"")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


async def exchange(request: bytes) -> Recorder:
    return await exchange_chunks([request], app)


async def exchange_chunks(chunks: list[bytes], asgi: ASGIApp) -> Recorder:
    """`chunks` as separate reads, the app's task running between them."""
    config = uvicorn.Config(asgi, http=protocol_class(LIMITS), lifespan="off", log_config=None)
    config.load()
    protocol = config.http_protocol_class(config, ServerState(), {}, asyncio.get_running_loop())
    transport = Recorder()
    protocol.connection_made(transport)
    for chunk in chunks:
        protocol.data_received(chunk)
        await asyncio.sleep(0)
    for _ in range(20):  # the request's task runs on the loop
        await asyncio.sleep(0)
    return transport


POST = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi"


def test_a_response_is_one_write() -> None:
    transport = asyncio.run(exchange(POST))
    (written,) = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"\r\n\r\ngot hi")


def test_pipelined_responses_are_one_write_each() -> None:
    transport = asyncio.run(exchange(POST + POST.replace(b"hi", b"yo")))
    assert [w.rsplit(b"\r\n", 1)[-1] for w in transport.writes] == [b"got hi", b"got yo"]


@pytest.mark.parametrize("close", [False, True])
def test_a_100_continue_goes_out_before_the_body_is_read(close: bool) -> None:
    head = b"POST /x HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 0\r\n"
    transport = asyncio.run(exchange(head + (b"connection: close\r\n" if close else b"") + b"\r\n"))
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert transport.writes[1].startswith(b"HTTP/1.1 200 OK") and len(transport.writes) == 2
    assert transport.closed is close


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers the sizes of the body messages it received and the sha256 of them all."""
    messages, digest = [], hashlib.sha256()
    while True:
        message = await receive()
        messages.append(len(message.get("body", b"")))
        digest.update(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = orjson.dumps({"sizes": messages, "sha256": digest.hexdigest()})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("size", [300_000, BODY_BATCH_BYTES])
def test_a_body_reaches_the_app_in_one_message_up_to_the_batch_size(size: int) -> None:
    # Arriving in 64 KiB reads, it woke the app once per read.
    head = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % size
    body = b"x" * size
    chunks = [head] + [body[i : i + 65536] for i in range(0, size, 65536)]
    transport = asyncio.run(exchange_chunks(chunks, reading_app))
    assert orjson.loads(transport.writes[0].rsplit(b"\r\n", 1)[-1])["sizes"] == [size]


def test_a_body_past_the_batch_size_reaches_the_app_whole() -> None:
    size = BODY_BATCH_BYTES * 2 + 12345
    head = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % size
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    chunks = [head] + [body[i : i + 65536] for i in range(0, size, 65536)]
    transport = asyncio.run(exchange_chunks(chunks, reading_app))
    answer = orjson.loads(transport.writes[0].rsplit(b"\r\n", 1)[-1])
    assert (sum(answer["sizes"]), answer["sha256"]) == (size, hashlib.sha256(body).hexdigest())


async def extension_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers whether the body was all there when it started, by the scope's extension."""
    body = b"yes" if BODY_RECEIVED in scope.get("extensions", {}) else b"no"
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(("chunks", "answer"), [([POST], b"yes"), ([POST[:-2], b"hi"], b"no")])
def test_the_app_is_told_when_the_body_is_all_there(chunks: list[bytes], answer: bytes) -> None:
    # Then it reads the body without arming a read timeout; a body still arriving is timed.
    transport = asyncio.run(exchange_chunks(chunks, extension_app))
    assert transport.writes[0].endswith(b"\r\n\r\n" + answer)
