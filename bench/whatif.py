"""In-process CPU per callback of the connector's hot path, as it is and with candidate changes.

`python -m bench.whatif --mix json` runs the connector's own translate and encode on the mix's
callbacks (no HTTP, no Kafka, no registry: a stand-in registry client hands the serializer an
id) and prints thread CPU time per callback for the current code and for each change, patched in
here only: nothing under connector/ is modified. It puts numbers on the profile's hot spots; the
end-to-end effect still has to be measured with `bench.run` once a change is made.
"""

from __future__ import annotations

import argparse
import binascii
import functools
import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import fastavro
import orjson
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from bench import payloads
from connector import logs, metrics, parsing, pipeline
from connector.callback import Callback
from connector.codec import current_schema
from connector.config import Config
from connector.pipeline import Route
from connector.providers.openmarket import mime
from connector.record import Media, MmsEvent

Case = tuple[Route, Callback]


class _Registered:
    schema_id = 1
    guid = None


class StandInRegistry:
    """Just enough of SchemaRegistryClient for AvroSerializer to encode without HTTP."""

    def register_schema_full_response(self, *_a: Any, **_k: Any) -> _Registered:
        return _Registered()

    def lookup_schema(self, *_a: Any, **_k: Any) -> _Registered:
        return _Registered()

    def get_associations_by_resource_name(self, *_a: Any, **_k: Any) -> list[Any]:
        return []


def cases(mix: str, count: int, prefix: str, media: Path) -> list[Case]:
    config = Config.model_validate(
        {
            "media": {"root": str(media)},
            "providers": {
                n: {"enabled": True, "default_country": "US" if n != "openmarket" else None}
                for n in payloads.PATHS
            },
        }
    )
    routes = {r.name: r for r in pipeline.routes(config)}
    templates = payloads.mix(mix)
    order = payloads.sequence(templates)
    tokens = payloads.tokens(prefix)
    out = []
    for i in range(count):
        t = templates[order[i % len(order)]][0]
        headers = {"content-type": t.content_type}
        cb = Callback(t.body(next(tokens)), headers, datetime.now(UTC), t.content_type)
        out.append((routes[t.provider], cb))
    return out


def avro_dict(event: MmsEvent) -> dict[str, Any]:
    """MmsEvent.to_avro() without dataclasses.asdict (which deep-copies every datetime)."""
    d = {f.name: getattr(event, f.name) for f in fields(MmsEvent)}
    d["from"] = d.pop("from_")
    d["media"] = [{f.name: getattr(m, f.name) for f in fields(Media)} for m in event.media]
    return d


@contextmanager
def memoized_numbers() -> Iterator[None]:
    """normalize_number behind an LRU cache: traffic repeats the same few numbers."""
    cached = functools.lru_cache(maxsize=65_536)(parsing.normalize_number)
    with mock.patch.object(parsing, "normalize_number", cached):
        yield


def _b64_strict(data: bytes, validate: bool = False) -> bytes:
    # What b64decode(validate=True) checks, in C (binascii strict mode, Python 3.11+).
    return binascii.a2b_base64(data, strict_mode=validate)


@contextmanager
def c_base64() -> Iterator[None]:
    with mock.patch.object(mime.base64, "b64decode", _b64_strict):
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mix", default="json", choices=payloads.MIXES)
    parser.add_argument("--count", type=int, default=0, help="callbacks per case")
    args = parser.parse_args(argv)
    count = args.count or (300 if args.mix == "multipart" else 3000)
    media = Path(f"/tmp/mms-bench-whatif-{time.time_ns()}")
    schema_text = current_schema()
    serializer = AvroSerializer(StandInRegistry(), schema_text)  # type: ignore[arg-type]
    ctx = SerializationContext("t", MessageField.VALUE)
    parsed = fastavro.parse_schema(orjson.loads(schema_text))
    header = b"\x00\x00\x00\x00\x01"

    def direct(record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(header)
        fastavro.schemaless_writer(out, parsed, record)
        return out.getvalue()

    log = logging.getLogger("connector.callbacks")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logs.JsonFormatter())

    def log_line(case: Case, events: list[pipeline.Outgoing]) -> None:
        metrics.CALLBACKS.labels(case[0].name, "published").inc()
        log.info(
            "callback %s",
            "published",
            extra={
                "provider": case[0].name,
                "outcome": "published",
                "request_id": "",
                "latency_ms": 1.0,
                "event_ids": [o.event.event_id for o in events],
                "duplicates": 0,
            },
        )

    steps: list[tuple[str, Callable[[Case], object] | None, Callable[[], Any] | None]] = [
        ("translate (as is)", lambda c: pipeline.translate(*c), None),
        (
            "translate + to_avro + AvroSerializer (as is)",
            lambda c: [serializer(o.value(), ctx) for o in pipeline.translate(*c)],
            None,
        ),
        (
            "  to_avro without dataclasses.asdict",
            lambda c: [serializer(avro_dict(o.event), ctx) for o in pipeline.translate(*c)],
            None,
        ),
        (
            "  ... and fastavro.schemaless_writer, schema parsed once",
            lambda c: [direct(avro_dict(o.event)) for o in pipeline.translate(*c)],
            None,
        ),
        (
            "translate, normalize_number memoized",
            lambda c: pipeline.translate(*c),
            memoized_numbers,
        ),
        (
            "translate, base64 checked in C (binascii strict_mode)",
            lambda c: pipeline.translate(*c),
            c_base64,
        ),
        (
            "all of the above (translate + encode)",
            lambda c: [direct(avro_dict(o.event)) for o in pipeline.translate(*c)],
            lambda: _both(memoized_numbers(), c_base64()),
        ),
        ("one JSON log line + one counter (as is, per callback)", None, None),
    ]
    print(f"mix {args.mix}: {count} callbacks per case, thread CPU per callback, best of 3")
    for n, (label, fn, patch) in enumerate(steps):
        best = float("inf")
        for rep in range(4):  # the first pass warms caches (phonenumbers metadata, regexes)
            batch = cases(args.mix, count, f"w{n}r{rep}", media)
            with patch() if patch else _nothing():
                if fn is None:
                    log.addHandler(handler)
                    log.propagate = False
                    log.setLevel(logging.INFO)
                    translated = [(c, pipeline.translate(*c)) for c in batch]
                    t0 = time.thread_time()
                    for c, events in translated:
                        log_line(c, events)
                else:
                    t0 = time.thread_time()
                    for c in batch:
                        fn(c)
                spent = time.thread_time() - t0
            if rep:
                best = min(best, spent)
        print(f"  {label:<58} {best / count * 1e6:8.1f} µs", flush=True)
    _cleanup(media)
    return 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _both(*managers: Any) -> Iterator[None]:
    with managers[0], managers[1]:
        yield


def _cleanup(root: Path) -> None:
    import shutil

    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
