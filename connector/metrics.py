"""Prometheus metrics, served at /metrics."""

from __future__ import annotations

import functools
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CALLBACKS = Counter(
    "mms_callbacks_total",
    "Callbacks by provider and outcome "
    "(published, duplicate, dead_lettered, refused, unauthorized, failed, overloaded)",
    ["provider", "outcome"],
)
RECORDS = Counter("mms_records_produced_total", "Records acknowledged by Kafka", ["topic"])
PRODUCE_LATENCY = Histogram(
    "mms_produce_latency_seconds",
    "From request received to the last delivery report of its records",
    ["provider"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DUPLICATES = Counter(
    "mms_duplicate_events_total", "Events not produced again: already published", ["provider"]
)
CONFLICTING_REPEATS = Counter(
    "mms_conflicting_repeats_total",
    "Repeats of a published event id whose content differs from the first copy (not produced)",
    ["provider"],
)
DEAD_LETTERS = Counter(
    "mms_dead_letters_total", "Callbacks written to the dead-letter topic", ["provider"]
)
KAFKA_ERRORS = Counter("mms_kafka_errors_total", "Producer errors and failed deliveries")
IN_FLIGHT = Gauge(
    "mms_in_flight_requests", "Callbacks being handled now", multiprocess_mode="livesum"
)
DEDUPE_ENTRIES = Gauge(
    "mms_dedupe_window_entries",
    "Event ids held in the dedupe windows of this pod's workers",
    multiprocess_mode="livesum",
)
LOOP_LAG = Gauge(
    "mms_event_loop_lag_seconds",
    "How late the event loop runs (the latest worker's); past server.max_loop_lag_ms: 503",
    multiprocess_mode="livemax",
)
HTTP_REFUSED = Counter(
    "mms_http_refused_total",
    "Connections answered and closed before the app: headers_too_large (431), "
    "header_timeout (408), too_many_connections (503)",
    ["reason"],
)

# The mirror (`mms-connector mirror`, connector/mirror.py).
MEDIA_FETCHED = Counter("mms_media_fetched_total", "Media fetched and stored", ["provider"])
MEDIA_FETCHED_BYTES = Counter(
    "mms_media_fetched_bytes_total", "Bytes of media fetched and stored", ["provider"]
)
MEDIA_FETCH_FAILURES = Counter(
    "mms_media_fetch_failures_total",
    "Failed fetch (or store) attempts by reason; an entry retried counts each attempt",
    ["provider", "reason"],
)
MEDIA_UNAVAILABLE = Counter(
    "mms_media_unavailable_total",
    "Media entries given up on (final failure, or still failing at the horizon)",
    ["provider", "reason"],
)
MEDIA_FETCH_LATENCY = Histogram(
    "mms_media_fetch_latency_seconds",
    "One fetch attempt, redirects included, until its outcome",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
MIRROR_RECORDS = Counter(
    "mms_mirror_records_total",
    "Records acknowledged on the mirrored topic: mirrored (media fetched or given up on), "
    "passed_through (nothing to mirror), undecodable (copied as they were)",
    ["outcome"],
)
MIRROR_LAG = Gauge(
    "mms_mirror_consumer_lag",
    "Records of a source topic not yet mirrored and committed, on this process's partitions",
    ["topic"],
)
MIRROR_PENDING = Gauge(
    "mms_mirror_pending_records", "Records consumed and not yet acknowledged on the mirrored topic"
)
SHARED_CLAIMS = Counter(
    "mms_shared_window_claims_total",
    "Event claims in the shared window: conflict (found published or claimed by another "
    "replica), elsewhere (answered 503: in flight on another replica)",
    ["outcome"],
)
SHARED_WINDOW_ERRORS = Counter(
    "mms_shared_window_errors_total",
    "Shared window calls that failed or timed out (the callback went on with this replica's "
    "window alone)",
    ["op"],
)


# The children every callback updates, looked up once: labels() takes a lock and builds its key
# each call (1 us, three times per callback).
@functools.cache
def callbacks(provider: str, outcome: str) -> Counter:
    return CALLBACKS.labels(provider, outcome)


@functools.cache
def records(topic: str) -> Counter:
    return RECORDS.labels(topic)


@functools.cache
def produce_latency(provider: str) -> Histogram:
    return PRODUCE_LATENCY.labels(provider)


def exposition() -> bytes:
    """/metrics: this process's samples; with workers (PROMETHEUS_MULTIPROC_DIR, set by
    connector/workers.py) every worker's, so any worker answers for the pod."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest()
    registry = CollectorRegistry()
    # prometheus_client's multiprocess module carries no annotations.
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
