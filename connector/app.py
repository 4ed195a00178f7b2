"""The Starlette app: one callback route per enabled provider, plus health endpoints.

A callback is answered 2xx only after Kafka acknowledged every record it produced; when Kafka
is down or slower than the provider's deadline the answer is 503 with Retry-After, so the
provider retries (the retry carries the same event ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from connector import pipeline
from connector.callback import Callback, Refusal, Reply
from connector.codec import Codec, registry_client
from connector.config import Config
from connector.publisher import OutMessage, Publisher, PublishError

log = logging.getLogger("connector.callbacks")

RETRY_AFTER_SECONDS = "5"


@dataclass
class Runtime:
    """What the lifespan builds and the handlers use."""

    codec: Codec | None = None
    publisher: Publisher | None = None


def create_app(config: Config) -> Starlette:
    routes = pipeline.routes(config)
    runtime = Runtime()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        client = registry_client(config.schema_registry.url)
        codec = Codec(client, config.schema_registry.compatibility)
        for topic in sorted({r.settings.topic for r in routes}):
            schema_id = await asyncio.to_thread(codec.register, topic)
            log.info("schema registered for topic %s: id %s", topic, schema_id)
        publisher = Publisher(config.kafka.bootstrap_servers, config.kafka.producer)
        runtime.codec, runtime.publisher = codec, publisher
        try:
            yield
        finally:
            left = await asyncio.to_thread(publisher.close, config.kafka.flush_timeout_seconds)
            if left:
                log.error("shutdown: %d record(s) not flushed to Kafka", left)

    def endpoint(route: pipeline.Route) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            return await _handle(route, request, runtime)

        return handle

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        if runtime.publisher is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await asyncio.to_thread(runtime.publisher.ping, 2.0)
        except Exception as exc:
            return JSONResponse({"status": "kafka unreachable", "detail": str(exc)}, 503)
        return JSONResponse({"status": "ready"})

    http_routes = [HttpRoute(r.path, endpoint(r), methods=["POST"]) for r in routes]
    http_routes += [HttpRoute("/healthz", healthz), HttpRoute("/readyz", readyz)]
    return Starlette(routes=http_routes, lifespan=lifespan)


async def _handle(route: pipeline.Route, request: Request, runtime: Runtime) -> Response:
    codec, publisher = runtime.codec, runtime.publisher
    assert codec is not None and publisher is not None  # set by the lifespan before serving
    started = time.perf_counter()
    request_id = request.headers.get("x-request-id", "")
    try:
        body = await _read_body(request, route.settings.max_body_bytes)
        callback = Callback(
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            received_at=datetime.now(UTC),
            content_type=request.headers.get("content-type", ""),
        )
        outgoing = pipeline.translate(route, callback)
    except Refusal as refusal:
        log.warning("%s refused %s: %s", route.name, request_id, refusal)
        return _response(route.provider.refused(refusal))

    try:
        messages = [
            OutMessage(o.topic, o.key.encode(), codec.encode(o.topic, o.value()), o.kafka_headers())
            for o in outgoing
        ]
    except Exception:
        # A record the schema rejects is our bug, not the provider's: never a 2xx, no traceback out.
        log.exception("%s: record does not encode %s", route.name, request_id)
        return JSONResponse({"error": "encoding_failed"}, status_code=500)
    try:
        await asyncio.wait_for(publisher.publish(messages), route.settings.deadline_seconds)
    except (PublishError, TimeoutError) as exc:
        log.error("%s not acknowledged by Kafka %s: %s", route.name, request_id, exc or "timeout")
        return JSONResponse(
            {"error": "kafka_unavailable", "detail": "not stored yet; retry later"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    log.info(
        "%s published %d event(s) %s in %.1f ms",
        route.name,
        len(outgoing),
        ",".join(o.event.event_id for o in outgoing),
        (time.perf_counter() - started) * 1000,
    )
    return _response(route.provider.accepted([o.event for o in outgoing]))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refusal("body_too_large", f"body over the {limit}-byte limit", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal("body_too_large", f"body over the {limit}-byte limit", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, dict(reply.headers), media_type=reply.media_type)
