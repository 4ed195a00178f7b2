"""bench/loadgen.py against servers that answer and close, as the connector's refusals do."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.loadgen import Generator, Spec

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nretry-after: 5\r\n"
    b"connection: close\r\n\r\n{}"
)
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"


async def _answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(REFUSAL)
    await writer.drain()
    writer.close()


def _refuse_every_other_at_accept() -> Any:
    """Every other connection answered 503 + close at once, nothing read (the connector past
    server.max_connections); the rest served, kept alive."""
    accepted = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        if accepted % 2:
            writer.write(REFUSAL)
            writer.close()
            return
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            writer.write(OK)

    return serve


async def _run(handler: Any, mode: str) -> dict[str, Any]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # More arrivals than 4 connections answer at once: requests wait for a connection, and
    # one is sent as soon as a connection is there or an answer frees one.
    spec = Spec("127.0.0.1", port, "json", mode=mode, rate=1000, connections=2,
                max_connections=4, warmup=0.2, duration=1.0, drain_seconds=5)  # fmt: skip
    try:
        return await Generator(spec).run()
    finally:
        server.close()


def test_an_answer_with_connection_close_ends_the_connection_not_the_next_request() -> None:
    """A request sent on a connection the server said it closes is lost: the generator sent
    its next one there, and a closed-loop sender died with its connection (here: nothing
    answered after the warm-up)."""
    for mode in ("open", "closed"):
        counts = asyncio.run(_run(_answer_then_close, mode))["counts"]
        assert counts["connection_errors"] == 0, mode
        assert counts["503"] > 500 and counts["503"] == counts["503_with_retry_after"], mode


def test_a_connection_refused_before_its_request_loses_no_request() -> None:
    """Past its connection limit the connector answers a new connection 503 + close before
    reading anything. When that answer came before the generator had sent its request, it was
    taken for the answer to a request in flight (the in-flight count went below zero), and the
    request was then sent on the closed connection and lost. It waits for a connection that is
    served instead (or, sent before the refusal came, has the refusal for its answer)."""
    for mode in ("open", "closed"):
        counts = asyncio.run(_run(_refuse_every_other_at_accept(), mode))["counts"]
        # Below zero when a refusal was taken for an answer; above it, requests still queued
        # in the generator when the run ended.
        assert counts["connection_errors"] == 0 and counts["unanswered"] >= 0, mode
        assert counts["2xx"] > 500 and counts["503"] == counts["503_with_retry_after"], mode
        assert counts["other"] == 0, mode
