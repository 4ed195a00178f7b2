"""Mirroring throughput beside the raw S3 put ceiling, in one run on the local stack:

    .venv/bin/python -m bench.mirror --events 4000 --duration 20

Starts Kafka, the registry and S3Proxy (connector/devstack, in `bench/.stack` like bench/run.py),
a media host (a threaded HTTP server in its own process, basic auth, 20-300 KB JPEG bodies, one
distinct body per URL), and writes `--events` Bandwidth v2 MMS-received records with 1-3 media
URLs on that host to a source topic (through the connector's own translate and codec). Then:

- the mirror: `mms-connector mirror` as a subprocess on the S3 store, the backlog already
  there; after `--warmup` s of mirroring, for `--duration` s (or until the backlog is done), its
  own CPU from /proc and its metrics (media fetched and their bytes): media/s and MB/s, and per
  CPU-second of the mirror; beside it the CPU of the media host, S3Proxy and the broker, which
  share the box;
- the ceiling: the same number of objects with the same sizes and bytes put with the same
  client (obstore, the connector's S3 client settings) from one process, `--concurrency` at
  once as the mirror fetches: objects/s and MB/s, per CPU-second of that process.

Writes bench/results/<date>-<what>.json and .md (the command and the commit included).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from bench import options, payloads, procstat, report
from bench.paths import MMS_CONNECTOR, PY, REPO, RUNS
from bench.processes import free_port, run_module, server, wait_http, wait_port
from bench.stack import (
    create_topics,
    encoder,
    running,
    s3_delete_prefix,
    s3_media,
    s3_store,
    stack_pids,
)

PROVIDER = "bandwidth-v2"
USER = "bench-media"
PASSWORD_VAR = "MMS_BENCH_MEDIA_PASSWORD"
MIN_SIZE, MAX_SIZE = 20_000, 300_000
# SOI + a JFIF APP0 header: what the fetcher's magic-byte sniffing (filetype) calls image/jpeg.
JPEG_HEAD = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")
POOL_SIZE = 16
POLL_SECONDS = 0.25  # /metrics of the mirror: ~1 ms of its CPU each


# --- media: the same bodies for the media host and the ceiling ---------------------------------


def size_of(n: int) -> int:
    return random.Random(n).randint(MIN_SIZE, MAX_SIZE)


def body_pool() -> list[bytes]:
    """Random (incompressible) tails, built once per process."""
    rng = random.Random(20261201)
    return [rng.randbytes(MAX_SIZE) for _ in range(POOL_SIZE)]


def body(n: int, pool: list[bytes]) -> bytes:
    """Media number `n`: a JPEG head, `n` (so every body and its sha256 differ), random bytes."""
    head = JPEG_HEAD + f"{n:016d}".encode()
    return head + pool[n % POOL_SIZE][: size_of(n) - len(head)]


def media_counts(events: int) -> list[int]:
    """Media per event, 1-3."""
    rng = random.Random(events)
    return [rng.randint(1, 3) for _ in range(events)]


# --- the media host (a process of its own: its CPU is reported apart) ----------------------------


def serve_media(port: int) -> None:
    pool = body_pool()
    token = base64.b64encode(f"{USER}:{os.environ[PASSWORD_VAR]}".encode()).decode()
    expected = f"Basic {token}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the mirror's client pools connections

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1].removesuffix(".jpg")
            if self.headers.get("Authorization") != expected:
                self._answer(401, b"", "text/plain")
            elif not name.isdigit():
                self._answer(404, b"", "text/plain")
            else:
                self._answer(200, body(int(name), pool), "image/jpeg")

        def _answer(self, status: int, content: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        # socketserver's listen backlog is 5: SYNs beyond it are dropped and retried after 1 s,
        # which the mirror's fetches at once would pay (tests/unit/test_fetch.py saw it at 8).
        request_queue_size = 128

    Server(("127.0.0.1", port), Handler).serve_forever()


# --- the ceiling (a process of its own: its CPU is the client's alone) ----------------------------


def put_ceiling(spec_file: Path, out_file: Path) -> None:
    """Put media 0..count-1 under spec's prefix, `concurrency` at once, with obstore."""
    import obstore

    from connector.devstack import Endpoints

    spec = json.loads(spec_file.read_text())
    endpoints = Endpoints(**spec["endpoints"])
    store = s3_store(endpoints, spec["prefix"])
    pool = body_pool()
    count, concurrency = spec["count"], spec["concurrency"]

    async def put_all() -> int:
        numbers = iter(range(count))
        sent = 0

        async def worker() -> None:
            nonlocal sent
            for n in numbers:
                content = body(n, pool)
                await obstore.put_async(
                    store,
                    f"{spec['prefix']}{n}",
                    content,
                    attributes={"Content-Type": "image/jpeg"},
                )
                sent += len(content)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return sent

    cpu0, t0 = procstat.cpu_seconds(os.getpid()), time.perf_counter()
    sent = asyncio.run(put_all())
    elapsed, cpu = time.perf_counter() - t0, procstat.cpu_seconds(os.getpid()) - cpu0
    out_file.write_text(json.dumps({"seconds": elapsed, "cpu_s": cpu, "bytes": sent}))


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Result:
    started: str
    command: str
    commit: str
    machine: dict[str, Any]
    options: dict[str, Any]
    systems: list[dict[str, Any]] = field(default_factory=list)


def produce_events(endpoints: Any, topic: str, host: str, events: int) -> int:
    """`events` MMS-received records with media on `host`, through the connector's translate and
    codec, owners spread over 256 numbers (keys: the mirror keeps one key's records in order).
    Returns how many media they carry."""
    from confluent_kafka import Producer

    from connector import pipeline
    from connector.providers.contract import Callback

    providers = {PROVIDER: {"enabled": True, "topic": topic}}
    routes, codec = encoder(endpoints.registry_url, topic, providers, None)
    route = routes[PROVIDER]
    template = json.loads(
        (payloads.PAYLOADS / "bandwidth_v2/message_received_mms.json").read_text()
    )
    producer = Producer({"bootstrap.servers": endpoints.bootstrap_servers, "linger.ms": 20})
    media = 0
    for i, count in enumerate(media_counts(events)):
        event = template[0]
        owner = f"+1919555{i % 256:04d}"
        event["to"] = event["message"]["owner"] = owner
        event["message"]["to"] = [owner]
        event["message"]["id"] = f"bench-mirror-{i}"
        event["message"]["media"] = [f"{host}/media/{media + k}.jpg" for k in range(count)]
        media += count
        callback = Callback(
            json.dumps([event]).encode(),
            {"content-type": "application/json"},
            datetime.now(UTC),
            "application/json",
        )
        for out in pipeline.translate(route, callback):
            m = out.kafka_record(codec)
            producer.produce(m.topic, m.value, m.key, headers=list(m.headers))
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("source records not delivered")
    return media


def scrape(port: int) -> dict[str, float]:
    """The mirror's counters: records mirrored, media and bytes stored, failed attempts."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    wanted = {
        "mms_mirror_records_total": "records",
        "mms_media_fetched_total": "media",
        "mms_media_fetched_bytes_total": "bytes",
        "mms_media_fetch_failures_total": "failures",
        "mms_media_unavailable_total": "unavailable",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                out[wanted[sample.name]] += sample.value
    return out


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    out = {name: procstat.cpu_seconds(pid) for name, pid in pids.items() if pid}
    out["machine"] = procstat.machine_busy_seconds()
    return out


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    cpu = {k: round(after[k] - before[k], 2) for k in after if k in before}
    ours = sum(v for k, v in cpu.items() if k != "machine")
    cpu["others"] = round(max(0.0, cpu["machine"] - ours), 2)
    return cpu


def figures(system: str, seconds: float, count: float, size: float, cpu: float) -> dict[str, Any]:
    mb = size / 1e6
    return {
        "system": system,
        "seconds": round(seconds, 2),
        "objects": int(count),
        "mb": round(mb, 1),
        "objects_per_s": round(count / seconds, 1),
        "mb_per_s": round(mb / seconds, 1),
        "cpu_s": round(cpu, 2),
        "cores": round(cpu / seconds, 2),
        "objects_per_cpu_s": round(count / cpu, 1) if cpu else None,
        "mb_per_cpu_s": round(mb / cpu, 1) if cpu else None,
    }


def mirror_config(
    path: Path,
    endpoints: Any,
    source: str,
    prefix: str,
    media: dict[str, Any],
    opts: argparse.Namespace,
) -> None:
    config = {
        "kafka": {"bootstrap_servers": endpoints.bootstrap_servers, "flush_timeout_seconds": 30},
        "schema_registry": {"url": endpoints.registry_url},
        "media": media,
        "mirror": {
            "group_id": f"bench-{prefix.strip('/').replace('/', '-')}",
            "topic": f"{source}.mirrored",
            "source_topics": [source],
            "concurrency": opts.concurrency,
        },
        "providers": {
            PROVIDER: {
                "enabled": True,
                "topic": source,
                "auth": {"unauthenticated": True},
                "media_fetch": {
                    "username": USER,
                    "password": {"env": PASSWORD_VAR},
                    "allowed_hosts": ["127.0.0.1"],
                    "allow_private": True,
                },
            }
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def measure_mirror(
    opts: argparse.Namespace, workdir: Path, endpoints: Any, watch: dict[str, int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mirror draining the backlog: its figures over the window, and the raw counters."""
    token = workdir.name.removeprefix("mirror-")
    source = f"mms.bench.{token}.mirror-source"
    prefix = f"bench/mirror-{token}/"
    create_topics(endpoints.bootstrap_servers, [source, f"{source}.mirrored"])
    host_port, mirror_port = free_port(), free_port()
    env = {**os.environ, PASSWORD_VAR: secrets.token_urlsafe(16)}
    host_cmd = [PY, "-m", "bench.mirror", "media-host", "--port", str(host_port)]
    with server(host_cmd, workdir / "media-host.log", env=env) as host:
        wait_port(host_port, host)
        loadavg = procstat.load_average()
        total_media = produce_events(
            endpoints, source, f"http://127.0.0.1:{host_port}", opts.events
        )
        media, store_env = s3_media(endpoints, prefix)
        cfg = workdir / "mirror.yaml"
        mirror_config(cfg, endpoints, source, prefix, media, opts)
        cmd = [MMS_CONNECTOR, "mirror", "--config", str(cfg)]
        cmd += ["--host", "127.0.0.1", "--port", str(mirror_port)]
        try:
            with server(cmd, workdir / "mirror.log", env={**env, **store_env}) as proc:
                wait_http(f"http://127.0.0.1:{mirror_port}/healthz", proc)
                pids = {"mirror": proc.pid, "media_host": host.pid, **watch}
                first = poll_until(mirror_port, proc, lambda c: c["records"] > 0, 120)
                ready = time.monotonic() + opts.warmup
                start = poll_until(mirror_port, proc, lambda c: time.monotonic() >= ready, 60)
                cpu0, t0 = cpu_of(pids), time.monotonic()
                threads0 = procstat.thread_cpu_seconds(proc.pid)
                ends = t0 + opts.duration
                end = poll_until(
                    mirror_port,
                    proc,
                    lambda c: c["records"] >= opts.events or time.monotonic() >= ends,
                    opts.duration + 60,
                )
                cpu1, t1 = cpu_of(pids), time.monotonic()
                threads1 = procstat.thread_cpu_seconds(proc.pid)
        finally:
            s3_delete_prefix(opts.stack_home, endpoints.s3_bucket, prefix)
    cpu = spent(cpu0, cpu1)
    got = {k: end[k] - start[k] for k in end}
    result = figures("mirror", t1 - t0, got["media"], got["bytes"], cpu["mirror"])
    result |= {
        "records": int(got["records"]),
        "records_per_s": round(got["records"] / (t1 - t0), 1),
        "failed_attempts": int(got["failures"]),
        "unavailable": int(got["unavailable"]),
        "cpu_s_by_process": cpu,
        # Threads by name: Python's (the event loop and the asyncio.to_thread workers for the
        # store and encoding) all show as mms-connector; tokio-* obstore's, rdk:* librdkafka's.
        "mirror_cpu_s_by_thread": {
            name: round(t - threads0.get(name, 0.0), 2)
            for name, t in sorted(threads1.items(), key=lambda kv: -kv[1])
            if t - threads0.get(name, 0.0) >= 0.01
        },
        "loadavg_start": loadavg,
        "loadavg_end": procstat.load_average(),
        "backlog": {"events": opts.events, "media": total_media},
        "counters_at_first_record": first,
        "drained": end["records"] >= opts.events,
    }
    return result, got


def poll_until(
    port: int,
    proc: subprocess.Popen[bytes],
    done: Callable[[dict[str, float]], bool],
    timeout: float,
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the mirror exited with {proc.returncode}")
        counters = scrape(port)
        if done(counters):
            return counters
        if time.monotonic() > deadline:
            raise RuntimeError(f"the mirror got no further than {counters}")
        time.sleep(POLL_SECONDS)


def measure_ceiling(
    opts: argparse.Namespace, workdir: Path, endpoints: Any, watch: dict[str, int], count: int
) -> dict[str, Any]:
    prefix = f"bench/ceiling-{workdir.name}/"
    spec = {"endpoints": asdict(endpoints), "prefix": prefix, "count": count}
    spec["concurrency"] = opts.concurrency
    loadavg = procstat.load_average()
    try:
        cpu0 = cpu_of(watch)
        out = run_module(["bench.mirror", "put-ceiling"], spec, workdir, "ceiling", timeout=600)
        cpu1 = cpu_of(watch)
    finally:
        s3_delete_prefix(opts.stack_home, endpoints.s3_bucket, prefix)
    result = figures("raw S3 put (obstore)", out["seconds"], count, out["bytes"], out["cpu_s"])
    result |= {
        # The driver and the ceiling process's start-up fall outside its own window: S3Proxy's
        # and the broker's CPU here cover the whole subprocess, a little more than the puts.
        "cpu_s_by_process": spent(cpu0, cpu1),
        "loadavg_start": loadavg,
        "loadavg_end": procstat.load_average(),
    }
    return result


def render(result: Result) -> str:
    title = f"Mirror benchmark: {result.options['what']}"
    lines = [
        *report.heading(title, result.started, result.command, result.commit, result.machine),
        "",
        "The mirror (`mms-connector mirror`, S3 store on the stack's S3Proxy) drains a backlog "
        "of Bandwidth v2 records whose media (20-300 KB, basic auth) a local media host "
        "serves; the ceiling puts the same number of objects, same sizes and bytes, with "
        "obstore from one process. CPU from /proc over each window; everything shares the box.",
        "",
        "| system | window s | objects | MB | objects/s | MB/s | CPU s | cores | "
        "objects / CPU-s | MB / CPU-s | media host CPU s | S3Proxy CPU s | broker CPU s | "
        "other processes' cores | load avg |",
        "|" + " --- |" * 15,
    ]
    for s in result.systems:
        cpu = s["cpu_s_by_process"]
        lines.append(
            f"| {s['system']} | {s['seconds']} | {s['objects']} | {s['mb']} | "
            f"{s['objects_per_s']} | {s['mb_per_s']} | {s['cpu_s']} | {s['cores']} | "
            f"{s['objects_per_cpu_s']} | {s['mb_per_cpu_s']} | {cpu.get('media_host', '-')} | "
            f"{cpu.get('s3')} | {cpu.get('broker')} | "
            f"{round(cpu['others'] / s['seconds'], 2)} | {s['loadavg_start'][0]} |"
        )
    mirror = next((s for s in result.systems if s["system"] == "mirror"), None)
    if mirror:
        lines += [
            "",
            f"Mirror: {mirror['records']} records ({mirror['records_per_s']}/s) in the window, "
            f"{mirror['failed_attempts']} failed fetch attempts, {mirror['unavailable']} "
            f"unavailable; backlog {mirror['backlog']['events']} events with "
            f"{mirror['backlog']['media']} media, drained: {mirror['drained']}.",
            "",
            "Mirror CPU s by thread: "
            + ", ".join(f"{k} {v}" for k, v in mirror["mirror_cpu_s_by_thread"].items()),
        ]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.mirror",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--events", type=int, default=4000, help="source records in the backlog")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds at most")
    p.add_argument("--warmup", type=float, default=3.0, help="mirroring seconds not measured")
    p.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="mirror.concurrency, and the ceiling's puts at once (the connector's default)",
    )
    options.add_stack_and_output(p, "mirror")
    a = p.parse_args(argv)
    a.stack_home = a.stack_home.resolve()
    return a


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["media-host"]:
        serve_media(int(args[args.index("--port") + 1]))
        return 0
    if args[:1] == ["put-ceiling"]:
        put_ceiling(Path(args[1]), Path(args[2]))
        return 0
    opts = parse(args)
    started = report.now()
    result = Result(
        started=started,
        command=report.command("bench.mirror", args),
        commit=report.commit_of(REPO),
        machine=report.machine(),
        options=report.options_record(vars(opts)),
    )
    RUNS.mkdir(parents=True, exist_ok=True)
    workdir = RUNS / f"mirror-{secrets.token_hex(3)}"
    workdir.mkdir()
    print(f"load average {result.machine['loadavg_start']}; stack in {opts.stack_home}")
    with running(opts.stack_home, opts.keep_stack) as endpoints:
        watch = stack_pids(opts.stack_home)
        mirrored, got = measure_mirror(opts, workdir, endpoints, watch)
        result.systems.append(mirrored)
        print(json.dumps({k: v for k, v in mirrored.items() if not isinstance(v, dict)}))
        ceiling = measure_ceiling(opts, workdir, endpoints, watch, max(100, int(got["media"])))
        result.systems.append(ceiling)
        print(json.dumps({k: v for k, v in ceiling.items() if not isinstance(v, dict)}))
    result.machine["loadavg_end"] = procstat.load_average()
    report.write(opts.out, f"{started[:10]}-{opts.what}", asdict(result), render(result))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
