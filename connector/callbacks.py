"""One callback, from its request to its reply: the hot path, compiled by mypyc (setup.py).

A callback is answered 2xx only once every record it produced is acknowledged by Kafka, or, for
a callback that cannot be translated, once it is safe in the dead-letter topic. When Kafka is
down or slower than the provider's deadline the answer is 503 with Retry-After, so the provider
retries; the retry carries the same event ids and is not produced twice (see dedupe).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.types import Message, Receive, Scope, Send

from connector import auth, dead_letters, logs, metrics, pipeline
from connector.claims import SharedClaims
from connector.config import Config
from connector.dedupe import Window
from connector.delivery import Delivery, NotDelivered
from connector.media import DeferredPuts, FilesystemMediaStore
from connector.providers.contract import (
    Callback,
    Refusal,
    Reply,
    json_reply,
    media_store_failed,
    refused_json,
)
from connector.publisher import KafkaRecord, PublishError
from connector.put_batches import PutBatches

log = logging.getLogger("connector.callbacks")

RETRY_AFTER_SECONDS = "5"


class LoopLag:
    """How late the event loop runs a timer, smoothed: how long a new request waits to be read.

    In-flight counting alone misses overload when the CPU, not Kafka, is the bottleneck:
    callbacks then queue in socket buffers and in the loop before they are counted.
    """

    INTERVAL = 0.01
    # Smoothing: sustained lateness counts, a single stall (a descheduled process, one big
    # body) does not: it takes five times the limit in one tick to reach the limit alone.
    WEIGHT = 0.2

    def __init__(self) -> None:
        self.seconds = 0.0

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.INTERVAL)
            late = max(0.0, loop.time() - start - self.INTERVAL)
            self.seconds += self.WEIGHT * (late - self.seconds)


@dataclass
class Runtime:
    """What the lifespan builds and the handlers share."""

    config: Config
    env: Mapping[str, str]
    window: Window
    claims: SharedClaims | None = None  # the window every replica shares (dedupe.shared)
    delivery: Delivery | None = None  # set once start-up has connected everything
    in_flight: int = 0
    loop_lag: LoopLag = dataclasses.field(default_factory=LoopLag)
    # Translation off the loop (large bodies, remote media stores) and a local store's writes
    # get threads of their own: on the loop's default executor (6 threads here) puts to a hung
    # S3 queued every callback and /readyz behind them for 12 s. Sized for callbacks waiting
    # on the store (network puts, fsyncs: with 4 threads, multipart MOs waited for one, the
    # connector disk-bound at 0.58 cores), not for CPU.
    workers: ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: ThreadPoolExecutor(32, thread_name_prefix="translate")
    )
    # A local store's writes and syncs, batched across callbacks (two threads of their own).
    media_puts: PutBatches = dataclasses.field(default_factory=PutBatches)


class CallbackHandler:
    """One provider's callback route, as a plain ASGI app.

    The hot path of the connector: no Request or Response objects, no task per request, so the
    per-callback overhead stays small next to translation and encoding (see bench/).
    """

    def __init__(self, route: pipeline.Route, runtime: Runtime) -> None:
        self.route = route
        # Secrets are read here, when the app is built: a missing one stops start-up.
        self.auth = auth.Authenticator(
            route.settings.auth, runtime.env, f"providers.{route.name}.auth",
            route.provider.signature, route.settings.max_elements,
        )  # fmt: skip
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime, name = self.runtime, self.route.name
        server = runtime.config.server
        if (
            runtime.in_flight >= server.max_in_flight
            or runtime.loop_lag.seconds * 1000 > server.max_loop_lag_ms
        ):
            # Shed load before reading the body: past saturation a quick 503 beats a queue.
            metrics.callbacks(name, "overloaded").inc()
            await _send(
                send, _unavailable("overloaded", "too many callbacks in flight; retry later")
            )
            return
        runtime.in_flight += 1
        try:
            reply = await _handle(self, scope, receive)
        except Exception:
            # Our bug, never the provider's: no traceback in the reply, and it will retry.
            log.exception("%s: callback handling failed", name)
            reply = json_reply(500, {"error": "internal_error"})
        finally:
            runtime.in_flight -= 1
        await _send(send, reply)


# mms_in_flight_requests is set from Runtime.in_flight this often (by every worker), not moved
# per callback: an inc and a dec of the gauge, a lock each, per callback.
IN_FLIGHT_REPORT_SECONDS = 0.1


async def report_in_flight(runtime: Runtime) -> None:
    while True:
        metrics.IN_FLIGHT.set(runtime.in_flight)
        await asyncio.sleep(IN_FLIGHT_REPORT_SECONDS)


# Bodies larger than this are translated on a worker thread, so the event loop keeps serving
# health checks and other callbacks while a large body is parsed. So is every callback of a
# provider that stores media when the store is remote: each put is a network round trip
# (2-4 ms to S3Proxy on loopback, more to a real S3).
OFFLOAD_BYTES = 256 * 1024
# With a local store, media bodies up to this size are translated on the loop (~2 ms of CPU
# per MB: SIMD base64 and SHA-NI), their files written and fsynced on a worker thread.
MEDIA_ON_LOOP_BYTES = 2 * 1024 * 1024
# The ASGI extension http_limits puts in a request's scope once its whole body is buffered:
# reading it then needs no read timeout (asyncio.timeout: 3 % of a JSON callback's CPU).
BODY_RECEIVED = "mms.body_received"
# A request id is logged, never trusted: at most this much of it.
MAX_REQUEST_ID_CHARS = 128


async def _handle(handler: CallbackHandler, scope: Scope, receive: Receive) -> Reply:
    route, runtime = handler.route, handler.runtime
    started = time.perf_counter()
    headers = _headers(scope["headers"])
    outcome = _Outcome(route.name, headers.get("x-request-id", "")[:MAX_REQUEST_ID_CHARS], started)
    client = scope.get("client")
    request = auth.Request(
        headers, client[0] if client else None, scope["path_params"].get("token")
    )
    try:
        handler.auth.check(request)
    except Refusal as refusal:
        return _unauthorized(refusal, outcome)
    delivery = runtime.delivery
    if delivery is None:
        # Only an app served without its lifespan gets here (uvicorn serves after start-up).
        return _unavailable("starting", "the connector is starting; retry later")

    received_at = datetime.now(UTC)
    content_type = headers.get("content-type", "")
    try:
        if BODY_RECEIVED in scope.get("extensions", ()):
            # All there already (http_limits says so): nothing to wait for, nor to time.
            body = await _read_body(receive, headers, route.settings.max_body_bytes)
        else:
            async with asyncio.timeout(route.settings.read_timeout_seconds):
                body = await _read_body(receive, headers, route.settings.max_body_bytes)
    except Refusal as refusal:
        if handler.auth.verifies_signature:
            # A body not kept cannot be verified: not known to be the provider's, so nothing
            # of it (its headers) goes into the dead-letter topic.
            return _unauthorized(refusal, outcome)
        # Too large to keep, but kept track of: the letter holds the headers, and the provider
        # gets its dead-letter answer (OpenMarket retried a 413 for ever).
        empty = Callback(b"", headers, received_at, content_type)
        return await _dead_letter(route, empty, refusal, runtime, delivery, outcome)
    except (TimeoutError, _Disconnected):
        outcome.log("refused", logging.WARNING, error="body_timeout")
        return _refusal_json(Refusal("body_timeout", "request body not received", 408))

    loop = asyncio.get_running_loop()
    if handler.auth.verifies_signature:
        query = scope.get("query_string", b"").decode("latin-1")
        verify = functools.partial(handler.auth.verify_signature, request, body, query, time.time())
        try:
            if len(body) > OFFLOAD_BYTES:
                # Building what is signed parses the body (a 10 MB form: ~1 s): off the loop.
                await loop.run_in_executor(runtime.workers, verify)
            else:
                verify()
        except Refusal as refusal:
            return _unauthorized(refusal, outcome)
    callback = Callback(body, headers, received_at, content_type)
    # One deadline for translating (media puts included) and publishing: the provider stops
    # waiting after its own timeout whichever step is slow.
    deadline = loop.time() + route.settings.deadline_seconds
    try:
        encoded = await _translated(route, callback, runtime, deadline)
    except TimeoutError:
        # The thread goes on (a media put is idempotent); the provider retries meanwhile.
        outcome.log("failed", logging.ERROR, error="translate_timeout")
        return _unavailable("translate_timeout", "not translated within the deadline; retry later")
    except Refusal as refusal:
        if refusal.status >= 500:
            # Our side failed (e.g. the media store), not the callback: let the provider retry.
            outcome.log("failed", logging.ERROR, error=refusal.code, detail=refusal.detail)
            return _unavailable(refusal.code, refusal.detail)
        return await _dead_letter(route, callback, refusal, runtime, delivery, outcome)
    return await _publish(route, encoded, delivery, outcome, deadline)


def _unauthorized(refusal: Refusal, outcome: _Outcome) -> Reply:
    # Nothing published, nothing dead-lettered: an unauthenticated body is not ours to keep.
    outcome.log("unauthorized", logging.WARNING, error=refusal.code, detail=refusal.detail)
    if refusal.status >= 500:  # what makes the provider send it again, signed (Vonage)
        return _unavailable(refusal.code, refusal.detail)
    basic = refusal.code == "unauthorized" and refusal.status == 401
    extra = {"WWW-Authenticate": 'Basic realm="mms-connector"'} if basic else {}
    return _refusal_json(refusal, extra)


async def _translated(
    route: pipeline.Route, callback: Callback, runtime: Runtime, deadline: float
) -> list[pipeline.EncodedEvent]:
    """`pipeline.translate`, on the loop or on a worker thread (see OFFLOAD_BYTES), within
    `deadline`."""
    loop, size = asyncio.get_running_loop(), len(callback.body)
    workers, batches = runtime.workers, runtime.media_puts
    media, store = route.provider.stores_media, route.store
    if media and isinstance(store, FilesystemMediaStore) and size <= MEDIA_ON_LOOP_BYTES:
        puts = DeferredPuts(store)
        encoded = pipeline.translate(route, callback, puts)
        try:
            async with asyncio.timeout_at(deadline):
                await batches.put_all(store, puts.parts)
        except OSError as exc:
            raise media_store_failed(exc) from None
        return encoded
    if media or size > OFFLOAD_BYTES:  # puts over the network, or a large body
        async with asyncio.timeout_at(deadline):
            return await loop.run_in_executor(workers, pipeline.translate, route, callback)
    return pipeline.translate(route, callback)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lower-cased; repeated headers combined into one comma-separated value
    (RFC 9110), so no X-Forwarded-For hop is lost. Joined once per name: concatenating as they
    came was quadratic (40,000 repeats blocked the loop for 13 s)."""
    values: dict[str, list[str]] = {}
    for raw_name, raw_value in raw:
        values.setdefault(raw_name.decode("latin-1").lower(), []).append(
            raw_value.decode("latin-1")
        )
    return {name: v[0] if len(v) == 1 else ", ".join(v) for name, v in values.items()}


async def _publish(
    route: pipeline.Route,
    encoded: list[pipeline.EncodedEvent],
    delivery: Delivery,
    outcome: _Outcome,
    deadline: float,
) -> Reply:
    ids = [e.event.event_id for e in encoded]
    try:
        delivered = await delivery.deliver(encoded, deadline)
    except NotDelivered as exc:
        if exc.code == "in_flight_elsewhere":
            outcome.log("failed", logging.WARNING, event_ids=ids, error=exc.code)
            return _unavailable(exc.code, exc.detail)
        outcome.log("failed", logging.ERROR, event_ids=ids, error=exc.detail)
        return _unavailable(exc.code, "not stored yet; retry later")
    for event_id in delivered.conflicting:
        _conflicting_repeat(route, event_id, outcome)
    for e in delivered.produced:
        metrics.records(e.topic).inc()
    duplicates = len(encoded) - len(delivered.produced)
    if duplicates:
        metrics.DUPLICATES.labels(route.name).inc(duplicates)
    metrics.produce_latency(route.name).observe(time.perf_counter() - outcome.started)
    outcome.log(
        "published" if delivered.produced else "duplicate", event_ids=ids, duplicates=duplicates
    )
    return route.provider.accepted([e.event for e in encoded])


def _conflicting_repeat(route: pipeline.Route, event_id: str, outcome: _Outcome) -> None:
    """A repeat is not produced; one whose content differs from the first copy is counted and
    logged, since it is either a provider that reuses ids or a collision, and is not silent."""
    metrics.CONFLICTING_REPEATS.labels(route.name).inc()
    log.warning(
        "callback repeats an event id with different content; not produced",
        extra={
            "provider": route.name,
            "request_id": outcome.request_id,
            "event_ids": [event_id],
        },
    )


async def _dead_letter(
    route: pipeline.Route,
    callback: Callback,
    refusal: Refusal,
    runtime: Runtime,
    delivery: Delivery,
    outcome: _Outcome,
) -> Reply:
    codec, publisher = delivery.clients.codec, delivery.clients.publisher
    topic = runtime.config.dead_letters.topic
    try:
        keep = functools.partial(
            dead_letters.record,
            route.name,
            route.path,
            callback,
            refusal,
            route.store,
            runtime.config.dead_letters.inline_max_bytes,
        )
        # A large body goes to the media store: off the loop, like translating it.
        if len(callback.body) > OFFLOAD_BYTES:
            letter = await asyncio.get_running_loop().run_in_executor(runtime.workers, keep)
        else:
            letter = keep()
        message = KafkaRecord(
            topic,
            route.name.encode(),
            codec.encode(topic, letter),
            [("provider", route.name.encode()), ("error_code", refusal.code.encode())],
        )
        await asyncio.wait_for(publisher.send([message]), route.settings.deadline_seconds)
    except (PublishError, TimeoutError, OSError) as exc:
        # OSError: the media store could not take a large body. Either way it is not safe yet.
        metrics.KAFKA_ERRORS.inc()
        outcome.log("failed", logging.ERROR, error=refusal.code, detail=f"dead letter: {exc}")
        return _unavailable("kafka_unavailable", "could not keep the callback; retry later")
    metrics.DEAD_LETTERS.labels(route.name).inc()
    outcome.log(
        "dead_lettered",
        logging.WARNING,
        error=refusal.code,
        detail=refusal.detail,
        body_sha256=letter["body_sha256"],
    )
    return route.provider.dead_lettered(refusal)


@dataclass
class _Outcome:
    """One structured log line and one metric per callback, whatever its path."""

    provider: str
    request_id: str
    started: float

    def log(self, outcome: str, level: int = logging.INFO, **fields: object) -> None:
        metrics.callbacks(self.provider, outcome).inc()
        latency_ms = round((time.perf_counter() - self.started) * 1000, 2)
        logs.line(
            log,
            level,
            f"callback {outcome}",
            {
                "provider": self.provider,
                "outcome": outcome,
                "request_id": self.request_id,
                "latency_ms": latency_ms,
                **fields,
            },
        )


class _Disconnected(Exception):
    """The client went away before its body was complete."""


async def _read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refusal("body_too_large", f"body over the {limit}-byte limit", status=413)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal("body_too_large", f"body over the {limit}-byte limit", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _refusal_json(refusal: Refusal, headers: Mapping[str, str] | None = None) -> Reply:
    return _with_headers(refused_json(refusal), headers or {})


def _unavailable(code: str, detail: str) -> Reply:
    reply = json_reply(503, {"error": code, "detail": detail})
    return _with_headers(reply, {"Retry-After": RETRY_AFTER_SECONDS})


def _with_headers(reply: Reply, headers: Mapping[str, str]) -> Reply:
    return dataclasses.replace(reply, headers={**reply.headers, **headers})


async def _send(send: Send, reply: Reply) -> None:
    headers = [(b"content-length", str(len(reply.body)).encode())]
    if reply.media_type:
        headers.append((b"content-type", reply.media_type.encode()))
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
    ]
    start: Message = {"type": "http.response.start", "status": reply.status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": reply.body})
