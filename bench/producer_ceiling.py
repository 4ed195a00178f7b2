"""Ceiling (b): the raw confluent-kafka producer, the connector's settings, pre-encoded records.

`python -m bench.producer_ceiling SPEC.json OUT.json`. The records (key, value, headers) are
what the connector produced for the same callbacks, encoded beforehand; this process only
produces them as fast as librdkafka takes them, counting delivery reports, so its rate is what
the Kafka side of the connector could do with no HTTP and no Python per callback.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connector.publisher import DEFAULTS, GUARANTEES


def run(spec: dict[str, Any]) -> dict[str, Any]:
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = pickle.loads(
        Path(spec["records"]).read_bytes()
    )
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
