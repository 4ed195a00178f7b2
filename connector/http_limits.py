"""Limits below the app, in uvicorn's httptools protocol: head size, head read time, connections.

The app sees a request only once its head (request line and headers) is complete, too late for
these: stock uvicorn lets httptools buffer a header of any size (a 50 MB header cost ~90 MB of
RSS), keeps a connection whose head never completes open for ever (slowloris), and accepts every
connection. Each refusal is one short reply with connection: close, one log line without any
header value, and `mms_http_refused_total{reason}`.

It also hands the app a request body in one message (`BODY_BATCH_BYTES`) and writes each
response in one write (`_OneWritePerResponse`).

uvicorn internals relied on (0.54, `HttpToolsProtocol`): the parser callbacks it implements
(on_header, on_headers_complete, on_body, on_message_complete), data_received feeding the parser,
on_body appending to the cycle's body and waking the app (as on_message_complete does),
on_response_complete called once per answered request, on_headers_complete handing
`self.transport` to the request's RequestResponseCycle (and using it for nothing else), the
cycle writing a response's head and then its body, and the attributes transport, client, loop,
connections (the server-wide set of open connections) and cycle (the latest request's
RequestResponseCycle, with body and response_complete).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from connector import metrics
from connector.callbacks import BODY_RECEIVED, RETRY_AFTER_SECONDS

log = logging.getLogger("connector.http")

# A request body up to this size reaches the app in one message. uvicorn hands over what came
# with each read and pauses reading past 64 KiB until the app takes it: a 300 KB multipart
# body took 5-10 wake-ups of the app (each a loop iteration, a task step, a copy of the bytes
# so far). Bounded per connection; the app's own limits and read timeout apply as before.
BODY_BATCH_BYTES = 1024 * 1024
# Enough of a header name to tell which one was repeated; values are never logged.
_LOGGED_NAME_CHARS = 40


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_header_count: int
    header_read_timeout: float
    max_connections: int


def reply(status: int, code: str, detail: str, retry_after: str | None = None) -> bytes:
    """A whole HTTP/1.1 response: `{"error", "detail"}` as JSON, then the connection closes."""
    body = orjson.dumps({"error": code, "detail": detail})
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        lines.append(f"retry-after: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def protocol_class(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, which takes a class, not an instance."""
    replies = {
        "headers_too_large": reply(
            431,
            "headers_too_large",
            f"request line and headers over {limits.max_header_bytes} bytes"
            f" or {limits.max_header_count} headers",
        ),
        "header_timeout": reply(
            408,
            "header_timeout",
            f"request headers not complete within {limits.header_read_timeout:g} s",
        ),
        "too_many_connections": reply(
            503,
            "too_many_connections",
            f"over {limits.max_connections} open connections; retry later",
            RETRY_AFTER_SECONDS,
        ),
    }
    attributes = {"limits": limits, "replies": replies}
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), attributes)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One connection. A request's head is bounded in bytes, header count and time; the body is
    not (the app bounds it per provider: max_body_bytes, read_timeout_seconds)."""

    limits: ClassVar[HttpLimits]
    replies: ClassVar[dict[str, bytes]]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server hands its protocol a (read-write) Transport: what uvicorn's override
        # narrows the parameter to, against asyncio.BaseProtocol's signature.
        super().connection_made(cast(asyncio.Transport, transport))
        self._refused = False
        self._in_head = True  # the bytes arriving now belong to a request head
        self._head_bytes = 0
        self._header_count = 0
        self._heads_completed = 0
        self._held: list[bytes] = []  # body chunks not handed to the app yet (on_body)
        self._held_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._responses = _OneWritePerResponse(self.transport)
        if len(self.connections) > self.limits.max_connections:
            # Answered at once, nothing read: a flood past the cap costs a write and a close per
            # connection, and frees its socket now rather than after a head timeout.
            self._refuse("too_many_connections", open_connections=len(self.connections))
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: nothing more is parsed
        if not self._in_head:
            super().data_received(data)
            return
        room = self.limits.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Only what fits the budget reaches the parser (it would buffer an unfinished header
        # whole); if the head ends within it, the rest is its body. Bytes of a next, pipelined
        # head in the same read go uncounted: at most one read.
        completed = self._heads_completed
        view = memoryview(data)
        self._feed(view[:room])  # no copy
        if self._refused or self.transport.is_closing():
            return
        if self._heads_completed == completed:
            self._refuse("headers_too_large", head_bytes=self._head_bytes + len(data))
            return
        self._feed(view[room:])

    def _feed(self, view: memoryview) -> None:
        # HttpToolsProtocol.data_received is annotated bytes, but it only hands the data to
        # httptools' HttpRequestParser.feed_data, which parses any buffer, a memoryview in place.
        super().data_received(cast(bytes, view))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            self._refuse(
                "headers_too_large",
                header_count=self._header_count,
                header_name=name[:_LOGGED_NAME_CHARS].decode("latin-1"),
            )
            return
        super().on_header(name, value)

    # Once refused, the parser still runs to the end of the bytes it was given; these keep the
    # rest of that request from reaching the app.
    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._heads_completed += 1
        self._cancel_head_timer()
        # The request's cycle writes through _responses; the protocol itself, unbuffered.
        transport, self.transport = self.transport, cast(asyncio.Transport, self._responses)
        try:
            super().on_headers_complete()
        finally:
            self.transport = transport

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        cycle = self.cycle
        if cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            super().on_body(body)
            return
        # Held for the app with the rest, which on_message_complete hands over (or a later
        # chunk past BODY_BATCH_BYTES): the app reading the body wakes once, not per read.
        self._held.append(body)
        self._held_bytes += len(body)
        if self._held_bytes > BODY_BATCH_BYTES:
            self._hand_over()
            super().on_body(b"")  # wakes the app; uvicorn's flow control pauses reading

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._hand_over()
        self.cycle.scope.setdefault("extensions", {})[BODY_RECEIVED] = {}
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        super().on_message_complete()

    def _hand_over(self) -> None:
        """The body held so far, into the request's cycle in one piece. As bytes when it is the
        first: uvicorn's receive then hands it to the app as it is, where it copied the
        bytearray it appends to (each a copy of a multipart body: 3 % of its CPU)."""
        if not self._held:
            return
        held = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held, self._held_bytes = [], 0
        cycle = self.cycle
        if cycle.body:
            cycle.body += held
        else:
            # uvicorn declares a bytearray; it only appends to it and passes it to bytes().
            cycle.body = cast(bytearray, held)

    def on_response_complete(self) -> None:
        self._responses.flush()  # a response without a body write (HEAD, 304)
        super().on_response_complete()
        # The next head is timed from now, unless a pipelined request is already waiting
        # (then the latest cycle is not answered yet) or the connection is closing. This also
        # bounds a body still arriving after an early answer (401, 413), which nothing reads.
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(
            self.limits.header_read_timeout, self._refuse, "header_timeout"
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, reason: str, **fields: object) -> None:
        if self.transport.is_closing():
            return  # already answered (uvicorn's 400) or going: a write now would follow it
        self._refused = True
        self._cancel_head_timer()
        metrics.HTTP_REFUSED.labels(reason).inc()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        log.warning("http %s", reason, extra={"error": reason, "client": client, **fields})
        if self.cycle is None or self.cycle.response_complete:
            # Never inside the response to an earlier, pipelined request still being answered.
            self.transport.write(self.replies[reason])
        self.transport.close()


class _OneWritePerResponse:
    """The transport as a request's cycle sees it: the response head is held until the body
    follows, and both go in one write. uvicorn writes them apart, and uvloop sends each write at
    once: two send(2) calls per response, 10 % of a JSON callback's CPU under load (py-spy,
    bench/results/2026-12-02-speed.md), one of them saved."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head = b""

    def write(self, data: bytes) -> None:
        if self._head:
            data, self._head = self._head + data, b""
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 1"):
            self._head = data  # a final response's head (a 100 Continue goes out at once)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head:
            self._transport.write(self._head)
            self._head = b""

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)
