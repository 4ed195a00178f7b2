"""Ceiling (b): the raw confluent-kafka producer, the connector's settings, pre-encoded records.

`python -m bench.producer_ceiling SPEC.json OUT.json`. The records (key, value, headers) are
what the connector produced for the same callbacks, encoded beforehand; this process only
produces them as fast as librdkafka takes them, counting delivery reports, so its rate is what
the Kafka side of the connector could do with no HTTP and no Python per callback.

`measure` drives it from a benchmark: encodes the records (`encode_records`, which also times
the connector's translate and encode in process), runs this process on them, reports.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bench import payloads, procstat
from bench.processes import run_module
from bench.stack import create_topics, encoder
from connector.publisher import DEFAULTS, GUARANTEES

Records = list[tuple[bytes, bytes, list[tuple[str, bytes]]]]


def measure(endpoints: Any, workdir: Path, topic: str, mix: str, count: int) -> dict[str, Any]:
    """`count` records of the mix produced to `topic` (created here) by this module's process."""
    records, pipeline_cost = encode_records(endpoints, mix, workdir)
    path = workdir / f"records-{mix}.pickle"
    path.write_bytes(pickle.dumps(records))
    create_topics(endpoints.bootstrap_servers, [topic])
    spec = {
        "bootstrap_servers": endpoints.bootstrap_servers,
        "topic": topic,
        "records": str(path),
        "count": count,
    }
    loadavg = procstat.load_average()
    result = run_module(["bench.producer_ceiling"], spec, workdir, "producer", timeout=600)
    result.update(loadavg_start=loadavg, loadavg_end=procstat.load_average(), mix=mix)
    result["pipeline_in_process"] = pipeline_cost
    print(
        f"  producer   raw        {result['delivered_per_s']:>8.1f} records/s  "
        f"cpu/1000 {result['cpu_s_per_1000']} s; translate+encode "
        f"{pipeline_cost['translate_us']}+{pipeline_cost['encode_us']} us/callback",
        flush=True,
    )
    return result


def encode_records(
    endpoints: Any, mix: str, workdir: Path, distinct: int = 2000
) -> tuple[Records, dict[str, Any]]:
    """The records the connector would produce for `distinct` callbacks of the mix, through the
    connector's own translate and codec; also the CPU those cost in-process per callback
    (thread CPU time, so other processes on the machine do not inflate it)."""
    from connector import pipeline
    from connector.providers.contract import Callback

    topic = f"mms.bench.encode.{mix}"
    media = workdir / "media-encode"
    providers = {n: {"enabled": True, "topic": topic} for n in payloads.PATHS}
    try:
        routes, codec = encoder(endpoints.registry_url, topic, providers, media)
        templates = payloads.mix(mix)
        order = payloads.sequence(templates)
        tokens = payloads.tokens("enc")
        records: Records = []
        translate_s = encode_s = 0.0
        for i in range(distinct):
            template = templates[order[i % len(order)]][0]
            headers = {"content-type": template.content_type}
            callback = Callback(
                template.body(next(tokens)), headers, datetime.now(UTC), template.content_type
            )
            t0 = time.thread_time()
            encoded = pipeline.translate(routes[template.provider], callback)
            t1 = time.thread_time()
            messages = [o.kafka_record(codec) for o in encoded]
            t2 = time.thread_time()
            translate_s += t1 - t0
            encode_s += t2 - t1
            records += [(m.key, m.value, list(m.headers)) for m in messages]
    finally:
        shutil.rmtree(media, ignore_errors=True)
    return records, {
        "callbacks": distinct,
        "records": len(records),
        "translate_us": round(translate_s / distinct * 1e6, 1),
        "encode_us": round(encode_s / distinct * 1e6, 1),
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    records: Records = pickle.loads(Path(spec["records"]).read_bytes())
    conf: dict[str, Any] = {
        **DEFAULTS,
        **spec.get("producer", {}),
        "bootstrap.servers": spec["bootstrap_servers"],
        **GUARANTEES,
    }
    producer = Producer(conf)
    topic = spec["topic"]
    delivered = [0, 0]  # ok, failed

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        delivered[err is not None] += 1

    def produce(count: int) -> None:
        n = len(records)
        for i in range(count):
            key, value, headers = records[i % n]
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.001)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(120)

    produce(spec.get("warmup", 5000))  # metadata, topic creation, idempotent producer id
    delivered[:] = [0, 0]
    count = spec["count"]
    cpu0, t0 = sum(os.times()[:2]), time.perf_counter()
    produce(count)
    elapsed = time.perf_counter() - t0
    cpu = sum(os.times()[:2]) - cpu0
    return {
        "records": count,
        "distinct_records": len(records),
        "value_bytes_mean": round(sum(len(r[1]) for r in records) / len(records)),
        "delivered": delivered[0],
        "failed": delivered[1],
        "duration_s": round(elapsed, 2),
        "delivered_per_s": round(delivered[0] / elapsed, 1),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1000": round(1000 * cpu / count, 3),
        "delivered_per_core_s": round(delivered[0] / cpu, 1) if cpu else None,
        "settings": {k: v for k, v in conf.items() if k != "bootstrap.servers"},
    }


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python -m bench.producer_ceiling SPEC.json OUT.json", file=sys.stderr)
        return 2
    result = run(json.loads(Path(sys.argv[1]).read_text()))
    Path(sys.argv[2]).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
