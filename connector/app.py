"""The Starlette app: one callback route per enabled provider (connector/callbacks.py), health
and metrics endpoints, and the lifespan that connects Kafka and the registry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette import routing
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from connector import metrics, pipeline
from connector.callbacks import CallbackHandler, Runtime, report_in_flight
from connector.claims import SharedClaims
from connector.config import Config
from connector.dedupe import Window
from connector.delivery import Delivery, connect

log = logging.getLogger("connector.callbacks")


def create_app(config: Config, env: Mapping[str, str] | None = None) -> Starlette:
    env = os.environ if env is None else env
    runtime = Runtime(config, env, Window(config.dedupe.window_seconds, config.dedupe.max_entries))
    if config.dedupe.shared is not None:
        runtime.claims = SharedClaims.connect(config.dedupe.shared, env)
    handlers = [CallbackHandler(route, runtime) for route in pipeline.routes(config, env)]

    for warning in config.warnings():
        log.warning("config: %s", warning)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        topics = sorted({h.route.settings.topic for h in handlers})
        clients, in_kafka = await asyncio.to_thread(connect, config, env, topics, runtime.window)
        delivery = Delivery(clients, runtime.window, runtime.claims)
        await delivery.published_elsewhere(in_kafka)
        runtime.delivery = delivery
        watchers = [
            asyncio.create_task(runtime.loop_lag.watch()),
            asyncio.create_task(report_in_flight(runtime)),
        ]
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
            runtime.workers.shutdown(wait=False, cancel_futures=True)
            runtime.media_puts.close()
            left = await delivery.close(config.kafka.flush_timeout_seconds)
            if left:
                log.error("shutdown: %d record(s) not flushed to Kafka", left)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready: schemas registered at start-up, Kafka and the registry answering now."""
        if runtime.delivery is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        publisher, registry = runtime.delivery.clients.publisher, runtime.delivery.clients.registry
        for name, check in (
            ("kafka", lambda: publisher.ping(2.0)),
            ("registry", registry.get_subjects),
        ):
            try:
                await asyncio.to_thread(check)
            except Exception as exc:
                return JSONResponse({"status": f"{name} unreachable", "detail": str(exc)}, 503)
        return JSONResponse({"status": "ready"})

    async def prometheus(_request: Request) -> Response:
        metrics.DEDUPE_ENTRIES.set(len(runtime.window))
        metrics.LOOP_LAG.set(runtime.loop_lag.seconds)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        routing.Route(
            h.route.path + ("/{token}" if h.auth.token_in_path else ""), h, methods=["POST"]
        )
        for h in handlers
    ]
    routes += [
        routing.Route("/healthz", healthz),
        routing.Route("/readyz", readyz),
        routing.Route("/metrics", prometheus),
    ]
    callbacks = {h.route.path: h for h in handlers if not h.auth.token_in_path}
    return _App(callbacks, routes=routes, lifespan=lifespan)


class _App(Starlette):
    """Starlette, with a POST to a callback path handed straight to its handler: Starlette's
    two middlewares and router cost 4 % of a JSON callback's CPU (py-spy, under load). Any
    other request, and a callback path with a token in it, goes through Starlette's routing
    (the same handler, or a 404/405)."""

    def __init__(self, callbacks: dict[str, CallbackHandler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._callbacks = callbacks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self._callbacks.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                scope["path_params"] = {}
                await handler(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
