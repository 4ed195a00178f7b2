"""One command for the connector's throughput and latency figures, side by side with the ceilings
and a peer, on the real local Kafka and registry (connector/devstack):

    .venv/bin/python -m bench.run --mix json --duration 20
    .venv/bin/python -m bench.run --soak            # 1 M callbacks, RSS sampled
    .venv/bin/python -m bench.run --smoke           # seconds; exit 1 unless all 2xx (for CI)

Per mix, in one run: (a) a no-op Starlette endpoint under the connector's uvicorn settings,
the connector (`mms-connector serve`, production producer settings) closed-loop to find its
saturation rate, open-loop at a fraction of it for latency, open-loop past it for overload
behaviour; (b) the raw confluent-kafka producer with the same settings on the same encoded
records; and, for the JSON mix, the peer (bench/peer.py). Writes
bench/results/<date>-<what>.json and .md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench import payloads, peer, procstat
from bench.loadgen import Spec

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_BIN = Path(sys.executable).parent
PY = sys.executable
RUNS = BENCH / ".runs"


@dataclass
class Options:
    mixes: list[str]
    duration: float
    warmup: float
    connections: int
    load_fraction: float
    fractions: list[float]
    overload_factor: float
    max_connections: int
    max_in_flight: int
    peer: bool
    ceilings: bool
    profile: float
    soak: bool
    soak_count: int
    soak_rate: float
    soak_warmup: float
    dedupe_max_entries: int
    media_stores: list[str]
    smoke: bool
    stack_home: Path
    keep_stack: bool
    out: Path
    what: str


@dataclass
class Run:
    """What one invocation measured; written as JSON and rendered as Markdown."""

    started: str
    command: str
    machine: dict[str, Any]
    options: dict[str, Any]
    phases: list[dict[str, Any]] = field(default_factory=list)
    ceilings: dict[str, Any] = field(default_factory=dict)
    peer: dict[str, Any] = field(default_factory=dict)
    soak: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commit: str = ""


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open within {timeout} s")


@contextlib.contextmanager
def server(
    cmd: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process; yield it; stop it (SIGTERM, then SIGKILL) whatever happens."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def loadgen(spec: Spec, workdir: Path, name: str) -> dict[str, Any]:
    spec_file, out_file = workdir / f"{name}.spec.json", workdir / f"{name}.out.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    budget = spec.warmup + spec.duration + spec.drain_seconds + 120
    if spec.count:
        budget += spec.count / spec.rate * 1.5
    subprocess.run(
        [PY, "-m", "bench.loadgen", str(spec_file), str(out_file)],
        cwd=REPO,
        check=True,
        timeout=budget,
    )
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


def log_counts(log: Path) -> dict[str, int]:
    """Log lines by level (the connector logs JSON lines), then the log is dropped: big."""
    counts: dict[str, int] = {}
    if not log.exists():
        return counts
    with log.open("rb") as f:
        for line in f:
            level = "other"
            if line.startswith(b"{"):
                with contextlib.suppress(ValueError):
                    level = json.loads(line).get("level", "other")
            counts[level] = counts.get(level, 0) + 1
    return counts


# --- the systems under test ------------------------------------------------------------------


# The server's environment carries the S3 keys; its config names the variables ({env: VAR}).
S3_KEY_VAR, S3_SECRET_VAR = "MMS_BENCH_S3_ACCESS_KEY_ID", "MMS_BENCH_S3_SECRET_ACCESS_KEY"


def s3_media(endpoints: Any, prefix: str) -> tuple[dict[str, Any], dict[str, str]]:
    """`media` settings for the stack's S3Proxy under `prefix`, and the environment they need."""
    s3: dict[str, Any] = {
        "bucket": endpoints.s3_bucket,
        "endpoint_url": endpoints.s3_endpoint_url,
        "prefix": prefix,
    }
    env: dict[str, str] = {}
    if endpoints.s3_access_key_id and endpoints.s3_secret_access_key:
        s3 |= {"access_key_id": {"env": S3_KEY_VAR}, "secret_access_key": {"env": S3_SECRET_VAR}}
        env = {
            S3_KEY_VAR: endpoints.s3_access_key_id,
            S3_SECRET_VAR: endpoints.s3_secret_access_key,
        }
    return {"store": "s3", "s3": s3}, env


def s3_store(endpoints: Any, prefix: str) -> Any:
    """An obstore S3Store on the stack's bucket with the connector's own client settings."""
    from obstore.store import S3Store

    from connector.config import MediaConfig
    from connector.media import s3_options

    settings, env = s3_media(endpoints, prefix)
    config = MediaConfig.model_validate(settings).s3
    return S3Store(config.bucket, **s3_options(config, env))


def s3_delete_prefix(stack_home: Path, bucket: str, prefix: str) -> None:
    """Remove what a run put under `prefix` (S3Proxy keeps it on disk, gigabytes per run).

    From the stack's filesystem backend directly: obstore deletes only by the multi-object
    POST ?delete, which S3Proxy 2.9.0 answers 501 NotImplemented.
    """
    shutil.rmtree(stack_home / "s3" / "data" / bucket / prefix, ignore_errors=True)


def connector_config(
    path: Path,
    endpoints: Any,
    port: int,
    topic: str,
    media: Path | dict[str, Any],
    opts: Options,
) -> None:
    """The connector's config file; `media` a filesystem store's root or `media` settings."""
    providers = {
        name: {"enabled": True, "topic": topic, "deadline_seconds": 8} for name in payloads.PATHS
    }
    for name in ("bandwidth-v1", "bandwidth-v2", "sinch"):
        providers[name]["default_country"] = "US"
    config = {
        "kafka": {"bootstrap_servers": endpoints.bootstrap_servers, "flush_timeout_seconds": 30},
        "schema_registry": {"url": endpoints.registry_url, "compatibility": "BACKWARD_TRANSITIVE"},
        "server": {"host": "127.0.0.1", "port": port},
        "media": media if isinstance(media, dict) else {"root": str(media)},
        "dead_letters": {"topic": f"{topic}.dlq"},
        "providers": providers,
    }
    if opts.max_in_flight:
        config["server"]["max_in_flight"] = opts.max_in_flight
    if opts.dedupe_max_entries:
        config["dedupe"] = {"max_entries": opts.dedupe_max_entries}
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def create_topics(bootstrap: str, topics: list[str], partitions: int = 3) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    for future in futures.values():
        future.result(30)


def summary(name: str, phase: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    result = {"system": name, "phase": phase, "loadavg_start": extra.pop("loadavg"), **result}
    result["loadavg_end"] = procstat.load_average()
    result.update(extra)
    counts, lat = result["counts"], result["latency_ms"]
    print(
        f"  {name:<10} {phase:<10} acked {result['acked_per_s']:>8.1f}/s  "
        f"p50 {lat['p50']} p99 {lat['p99']} max {lat['max']} ms  "
        f"2xx {counts['2xx']} 503 {counts['503']} other {counts['other']} "
        f"err {counts['connection_errors']}  cores {result['server_cores']}  "
        f"load {result['loadavg_start'][0]}",
        flush=True,
    )
    return result


def spec_for(port: int, mix: str, pid: int, opts: Options, prefix: str, **kw: Any) -> Spec:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "mix": mix,
        "connections": opts.connections,
        "max_connections": opts.max_connections,
        "warmup": opts.warmup,
        "duration": opts.duration,
        "prefix": prefix,
        "server_pid": pid,
    }
    base.update(kw)
    return Spec(**base)


class Bench:
    def __init__(self, opts: Options, run: Run, workdir: Path, endpoints: Any) -> None:
        self.opts = opts
        self.run = run
        self.workdir = workdir
        self.endpoints = endpoints
        self.token = secrets.token_hex(2)
        self.phase_no = 0
        state = json.loads((opts.stack_home / "state.json").read_text())
        self.broker = {"broker": state.get("kafka_pid") or 0, "s3": state.get("s3_pid") or 0}

    def prefix(self) -> str:
        self.phase_no += 1
        return f"{self.token}p{self.phase_no:02d}"

    def measure(
        self, system: str, phase: str, port: int, mix: str, pid: int, **kw: Any
    ) -> dict[str, Any]:
        loadavg = procstat.load_average()
        spec = spec_for(port, mix, pid, self.opts, self.prefix(), watch_pids=self.broker, **kw)
        result = loadgen(spec, self.workdir, f"{system}-{mix}-{phase}")
        return summary(system, phase, result, loadavg=loadavg, mix=mix)

    # (a) -----------------------------------------------------------------------------------

    def noop(self, mix: str) -> dict[str, Any]:
        port = free_port()
        cmd = [PY, "-m", "bench.noop_app", "--port", str(port)]
        with server(cmd, self.workdir / "noop.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            return self.measure("noop", "saturate", port, mix, proc.pid, mode="closed")

    # the connector -------------------------------------------------------------------------

    @contextlib.contextmanager
    def connector(self, topic: str, store: str = "filesystem") -> Iterator[tuple[int, int, Path]]:
        port = free_port()
        root = self.workdir / f"media-{topic}"
        prefix = f"bench/{topic}/"
        media, env = s3_media(self.endpoints, prefix) if store == "s3" else (root, {})
        cfg = self.workdir / f"connector-{topic}.yaml"
        connector_config(cfg, self.endpoints, port, topic, media, self.opts)
        log = self.workdir / f"connector-{topic}.log"
        cmd = [str(VENV_BIN / "mms-connector"), "serve", "--config", str(cfg)]
        try:
            with server(cmd, log, env={**os.environ, **env}) as proc:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc)
                yield port, proc.pid, log
        finally:
            shutil.rmtree(root, ignore_errors=True)
            if store == "s3":
                s3_delete_prefix(self.opts.stack_home, self.endpoints.s3_bucket, prefix)

    def connector_phases(self, mix: str, store: str) -> list[dict[str, Any]]:
        opts = self.opts
        topic = f"mms.bench.{self.token}.{mix}.{store}"
        create_topics(self.endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
        out = []
        with self.connector(topic, store) as (port, pid, log):
            sat = self.measure("connector", "saturate", port, mix, pid, mode="closed")
            out.append(sat)
            rate = max(50.0, sat["acked_per_s"])
            for fraction in opts.fractions:
                out.append(
                    self.measure(
                        "connector",
                        f"{round(fraction * 100)}%",
                        port,
                        mix,
                        pid,
                        mode="open",
                        rate=round(fraction * rate),
                    )
                )
            out.append(
                self.measure(
                    "connector",
                    "overload",
                    port,
                    mix,
                    pid,
                    mode="open",
                    rate=round(opts.overload_factor * rate),
                    duration=min(opts.duration, 10.0),
                )
            )
            if opts.profile:
                out[-1]["profile"] = self.profile(port, pid, mix)
        levels = log_counts(log)
        for result in out:
            result["connector_log_lines"] = levels
            result["media_store"] = store
        log.unlink(missing_ok=True)
        return out

    def profile(self, port: int, pid: int, mix: str) -> dict[str, Any]:
        """py-spy on the connector during an extra closed-loop run (not one of the figures)."""
        pyspy = VENV_BIN / "py-spy"
        if not pyspy.exists():
            return {"skipped": "py-spy is not installed in the venv (pip install py-spy)"}
        raw = self.opts.out / f"{self.run.started[:10]}-{self.opts.what}-{mix}-profile.txt"
        seconds = self.opts.profile
        spy = subprocess.Popen(
            [
                str(pyspy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--gil",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            result = self.measure(
                "connector",
                "profiled",
                port,
                mix,
                pid,
                mode="closed",
                warmup=0.5,
                duration=seconds + 1,
            )
        finally:
            spy.wait(120)
        return {
            "collapsed_stacks": raw.name,  # beside the result files
            "acked_per_s": result["acked_per_s"],
            "top": top_frames(raw),
        }

    # (b) -----------------------------------------------------------------------------------

    def producer_ceiling(self, mix: str, count: int) -> dict[str, Any]:
        records, pipeline_cost = encode_records(self.endpoints, mix, self.workdir)
        path = self.workdir / f"records-{mix}.pickle"
        path.write_bytes(pickle.dumps(records))
        topic = f"mms.bench.{self.token}.{mix}.raw"
        create_topics(self.endpoints.bootstrap_servers, [topic])
        spec = {
            "bootstrap_servers": self.endpoints.bootstrap_servers,
            "topic": topic,
            "records": str(path),
            "count": count,
        }
        spec_file, out_file = self.workdir / "producer.spec.json", self.workdir / "producer.json"
        spec_file.write_text(json.dumps(spec))
        loadavg = procstat.load_average()
        subprocess.run(
            [PY, "-m", "bench.producer_ceiling", str(spec_file), str(out_file)],
            cwd=REPO,
            check=True,
            timeout=600,
        )
        result: dict[str, Any] = json.loads(out_file.read_text())
        result.update(loadavg_start=loadavg, loadavg_end=procstat.load_average(), mix=mix)
        result["pipeline_in_process"] = pipeline_cost
        print(
            f"  producer   raw        {result['delivered_per_s']:>8.1f} records/s  "
            f"cpu/1000 {result['cpu_s_per_1000']} s; translate+encode "
            f"{pipeline_cost['translate_us']}+{pipeline_cost['encode_us']} us/callback",
            flush=True,
        )
        return result

    # the peer ------------------------------------------------------------------------------

    def peer_phases(self, mix: str) -> dict[str, Any]:
        if mix != "json":
            return {"skipped": "the peer's mapping covers the JSON (bandwidth-v2) callbacks only"}
        try:
            binary = peer.build(self.workdir / "peer-build.log")
        except peer.PeerUnavailable as exc:
            return {"unavailable": str(exc)}
        topic = f"mms.bench.{self.token}.peer"
        create_topics(self.endpoints.bootstrap_servers, [topic])
        port = free_port()
        cfg = self.workdir / "peer.yaml"
        schema = sorted((REPO / "schemas").glob("mms_event.v*.avsc"))[-1]
        cfg.write_text(
            peer.config(
                port, self.endpoints.bootstrap_servers, self.endpoints.registry_url, topic, schema
            )
        )
        out: dict[str, Any] = {"binary": str(binary), "phases": []}
        with server([str(binary), "-c", str(cfg)], self.workdir / "peer.log") as proc:
            wait_port(port, proc)
            pid = proc.pid
            sat = self.measure("peer", "saturate", port, mix, pid, mode="closed")
            rate = round(self.opts.load_fraction * max(50.0, sat["acked_per_s"]))
            at = self.measure(
                "peer",
                f"{round(self.opts.load_fraction * 100)}%",
                port,
                mix,
                pid,
                mode="open",
                rate=rate,
            )
            out["phases"] = [sat, at]
        return out


def encode_records(
    endpoints: Any, mix: str, workdir: Path, distinct: int = 2000
) -> tuple[list[tuple[bytes, bytes, list[tuple[str, bytes]]]], dict[str, Any]]:
    """The records the connector would produce for `distinct` callbacks of the mix, through the
    connector's own translate and codec; also the CPU those cost in-process per callback
    (thread CPU time, so other processes on the machine do not inflate it)."""
    from connector import pipeline
    from connector.callback import Callback
    from connector.codec import Codec, registry_client
    from connector.config import Config

    topic = f"mms.bench.encode.{mix}"
    media = workdir / "media-encode"
    config = Config.model_validate(
        {
            "schema_registry": {"url": endpoints.registry_url},
            "media": {"root": str(media)},
            "providers": {n: {"enabled": True, "topic": topic} for n in payloads.PATHS},
        }
    )
    routes = {r.name: r for r in pipeline.routes(config)}
    codec = Codec(registry_client(endpoints.registry_url), "BACKWARD_TRANSITIVE")
    codec.register(topic)
    templates = payloads.mix(mix)
    order = payloads.sequence(templates)
    tokens = payloads.tokens("enc")
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    translate_s = encode_s = 0.0
    for i in range(distinct):
        template = templates[order[i % len(order)]][0]
        headers = {"content-type": template.content_type}
        callback = Callback(
            template.body(next(tokens)), headers, datetime.now(UTC), template.content_type
        )
        t0 = time.thread_time()
        outgoing = pipeline.translate(routes[template.provider], callback)
        t1 = time.thread_time()
        messages = [o.message(codec) for o in outgoing]
        t2 = time.thread_time()
        translate_s += t1 - t0
        encode_s += t2 - t1
        records += [(m.key, m.value, list(m.headers)) for m in messages]
    shutil.rmtree(media, ignore_errors=True)
    return records, {
        "callbacks": distinct,
        "records": len(records),
        "translate_us": round(translate_s / distinct * 1e6, 1),
        "encode_us": round(encode_s / distinct * 1e6, 1),
    }


def top_frames(raw: Path, n: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares of samples per frame, from py-spy's collapsed stacks."""
    if not raw.exists():
        return {}
    total = 0
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:n]
        return [(k, round(100 * v / total, 1)) for k, v in ranked]

    # py-spy names files relative to their sys.path entry: "app.py", "providers/sinch.py".
    connector = REPO / "connector"
    files = {str(f.relative_to(connector)) for f in connector.rglob("*.py")} - {"cli.py"}
    ours = {k: v for k, v in incl.items() if k.rpartition(" (")[2].rstrip(")") in files}
    return {
        "samples": [("total", float(total))],
        "self_pct": top(own),
        "inclusive_pct": top(incl),
        "connector_inclusive_pct": top(ours),
    }


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)"
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        file = file.replace(str(REPO) + "/", "")
    return f"{name} ({file})"


# --- checks and report ---------------------------------------------------------------------------


def check(run: Run, what: str, ok: bool | None, detail: str) -> None:
    run.checks.append({"target": what, "met": ok, "measured": detail})


def checks_for_mix(run: Run, mix: str, phases: list[dict[str, Any]], opts: Options) -> None:
    by = {(p["system"], p["phase"]): p for p in phases if p.get("mix") == mix}
    sat = by.get(("connector", "saturate"))
    if sat is None:
        return
    floor = {"json": 5000, "xml": 4000, "multipart": 1500}.get(mix)
    if floor:
        check(
            run,
            f"{mix}: >= {floor}/s acknowledged",
            sat["acked_per_s"] >= floor,
            f"{sat['acked_per_s']}/s",
        )
    noop = by.get(("noop", "saturate"))
    if noop and noop["acked_per_s"]:
        share = sat["acked_per_s"] / noop["acked_per_s"]
        check(
            run,
            f"{mix}: >= 70 % of the no-op endpoint",
            share >= 0.7,
            f"{100 * share:.0f} % ({sat['acked_per_s']} / {noop['acked_per_s']})",
        )
    at = by.get(("connector", f"{round(opts.load_fraction * 100)}%"))
    if at:
        p99 = at["latency_ms"]["p99"]
        check(
            run,
            f"{mix}: p99 <= 25 ms at {round(opts.load_fraction * 100)} % of saturation",
            p99 is not None and p99 <= 25,
            f"p99 {p99} ms at {at['offered_per_s']}/s",
        )
        bad = at["counts"]["5xx"]
        check(run, f"{mix}: no 5xx below saturation", bad == 0, f"{at['counts']}")
    over = by.get(("connector", "overload"))
    if over:
        c = over["counts"]
        bounded = c["503"] > 0 and c["503_with_retry_after"] == c["503"] and c["other"] == 0
        check(
            run,
            f"{mix}: past saturation, 503 + Retry-After (bounded in flight)",
            bounded,
            f"offered {over['offered_per_s']}/s: 2xx {c['2xx']}, 503 {c['503']} "
            f"({c['503_with_retry_after']} with Retry-After), other {c['other']}, "
            f"p99 {over['latency_all_ms']['p99']} ms, max {over['latency_all_ms']['max']} ms, "
            f"{over['client_in_flight_max']} requests in flight at most",
        )


def compare_stores(run: Run, mix: str, stores: list[str]) -> None:
    """The connector at saturation with each media store, side by side (a figure, no target)."""
    sats = {
        p["media_store"]: p
        for p in run.phases
        if p["system"] == "connector" and p["mix"] == mix and p["phase"] == "saturate"
    }
    if len(stores) < 2 or not all(s in sats for s in stores):
        return
    check(
        run,
        f"{mix}: callbacks per CPU-second at saturation, " + " beside ".join(stores),
        None,
        "; ".join(
            f"{s}: {sats[s]['acked_per_s']}/s, {sats[s]['acked_per_core_s']} per core-s "
            f"(S3Proxy {sats[s]['cpu_s'].get('s3')} CPU s)"
            for s in stores
        ),
    )


def others(phase: dict[str, Any]) -> float | None:
    """Cores used by processes other than the server, the broker and the load generator."""
    spent = phase["cpu_s"].get("others")
    return round(spent / phase["duration_s"], 2) if spent is not None else None


def render(run: Run) -> str:
    lines = [
        f"# Connector benchmark: {run.options['what']} ({run.started})",
        "",
        f"Command: `{run.command}`  ",
        f"Commit: `{run.commit}`  ",
        f"Machine: {run.machine['cpus']} CPUs, {run.machine['cpu_model']}; "
        f"Python {run.machine['python']}; load average at start {run.machine['loadavg_start']}",
        "",
        "Broker, registry, load generator and server share the machine. Latency runs from each "
        "request's scheduled time (open loop) or send time (closed loop). CPU and RSS are the "
        "server process's (threads included), over the measured window.",
        "",
        "| system | mix | phase | offered/s | acked/s | p50 ms | p95 ms | p99 ms | max ms | "
        "2xx | 503 (Retry-After) | other / conn err | server cores | CPU s / 1000 | "
        "acked / core-s | RSS MB before → after | broker CPU s | S3Proxy CPU s | loadgen CPU s | "
        "other processes' cores | load avg |",
        "|" + " --- |" * 21,
    ]
    for p in run.phases:
        lat, c = p["latency_ms"], p["counts"]
        system = p["system"] + (f" ({p['media_store']})" if "media_store" in p else "")
        lines.append(
            f"| {system} | {p['mix']} | {p['phase']} | {p['offered_per_s'] or 'closed'} | "
            f"{p['acked_per_s']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | {lat['max']} | "
            f"{c['2xx']} | {c['503']} ({c['503_with_retry_after']}) | "
            f"{c['other']} / {c['connection_errors'] + c['unanswered']} | {p['server_cores']} | "
            f"{p['server_cpu_s_per_1000']} | {p['acked_per_core_s']} | "
            f"{p['rss_mb_before']} → {p['rss_mb_after']} | {p['cpu_s'].get('broker')} | "
            f"{p['cpu_s'].get('s3')} | {p['loadgen_cpu_s']} | {others(p)} | "
            f"{p['loadavg_start'][0]} |"
        )
    threads = [p for p in run.phases if p["phase"] == "saturate" and p.get("server_thread_cpu_s")]
    if threads:
        lines += ["", "## Server CPU by thread at saturation (CPU s over the window)", ""]
        for p in threads:
            shares = ", ".join(f"{k} {v}" for k, v in p["server_thread_cpu_s"].items())
            lines.append(f"- {p['system']} {p['mix']} ({p['duration_s']} s): {shares}")
    if run.ceilings:
        lines += ["", "## Ceiling (b): raw confluent-kafka producer, same settings", ""]
        lines += [
            "| mix | records | delivered/s | CPU s / 1000 | delivered / core-s | "
            "value bytes | translate µs / callback | encode µs / callback | load avg |",
            "|" + " --- |" * 9,
        ]
        for mix, r in run.ceilings.items():
            pc = r["pipeline_in_process"]
            lines.append(
                f"| {mix} | {r['records']} | {r['delivered_per_s']} | {r['cpu_s_per_1000']} | "
                f"{r['delivered_per_core_s']} | {r['value_bytes_mean']} | {pc['translate_us']} | "
                f"{pc['encode_us']} | {r['loadavg_start'][0]} |"
            )
    if run.peer:
        lines += ["", "## Peer", ""]
        for mix, r in run.peer.items():
            if "phases" not in r:
                lines.append(f"- {mix}: {r.get('unavailable') or r.get('skipped')}")
    profiled = [p for p in run.phases if p.get("profile", {}).get("top")]
    for p in profiled:
        prof = p["profile"]
        lines += [
            "",
            f"## Profile: connector, {p['mix']}, closed loop (py-spy, GIL-holding samples)",
            "",
            f"Collapsed stacks: `{prof['collapsed_stacks']}`",
            "",
            "| self % | frame | | inclusive % | connector/ frame |",
            "| --- | --- | --- | --- | --- |",
        ]
        for (own, own_pct), (inc, inc_pct) in zip(
            prof["top"]["self_pct"], prof["top"]["connector_inclusive_pct"], strict=False
        ):
            lines.append(f"| {own_pct} | `{own}` | | {inc_pct} | `{inc}` |")
    if run.soak:
        s = run.soak
        lines += [
            "",
            "## Soak",
            "",
            f"{s['callbacks']} callbacks ({s['mix']}) at {s['rate']}/s open loop: "
            f"acked {s['acked']}, other {s['not_acked']}; p99 {s['p99_ms']} ms; RSS after warm-up "
            f"{s['rss_mb_warm']} MB, at the end {s['rss_mb_end']} MB (max {s['rss_mb_max']} MB), "
            f"growth {s['growth_pct']} %; dedupe window entries at the end: "
            f"{s.get('dedupe_window_entries')}.",
            "",
            "RSS (s since start: MB): "
            + ", ".join(
                f"{t:.0f}: {mb}"
                for t, mb, _n in s["rss_samples"][:: max(1, len(s["rss_samples"]) // 15)]
            ),
        ]
    if run.checks:
        lines += ["", "## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
        for c in run.checks:
            met = {True: "yes", False: "**no**", None: "n/a"}[c["met"]]
            lines.append(f"| {c['target']} | {met} | {c['measured']} |")
    if run.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in run.notes]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "loadavg_start": procstat.load_average(),
    }


# --- soak and smoke ------------------------------------------------------------------------------


def soak(bench: Bench, opts: Options) -> dict[str, Any]:
    mix = opts.mixes[0]
    topic = f"mms.bench.{bench.token}.soak"
    create_topics(bench.endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
    warmup = opts.soak_warmup
    with bench.connector(topic, opts.media_stores[0]) as (port, pid, log):
        if not opts.soak_rate:
            sat = bench.measure("connector", "saturate", port, mix, pid, mode="closed", duration=10)
            opts.soak_rate = round(opts.load_fraction * sat["acked_per_s"])
            bench.run.phases.append(sat)
        result = bench.measure(
            "connector",
            "soak",
            port,
            mix,
            pid,
            mode="open",
            rate=opts.soak_rate,
            count=opts.soak_count,
            warmup=warmup,
            duration=0,
            sample_seconds=5.0,
            drain_seconds=30.0,
        )
        entries = None
        metrics = f"http://127.0.0.1:{port}/metrics"
        with contextlib.suppress(OSError), urllib.request.urlopen(metrics, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("mms_dedupe_window_entries "):
                    entries = float(line.split()[1])
    log.unlink(missing_ok=True)
    samples = result.pop("samples")
    warm = next((s for s in samples if s["t"] >= warmup), samples[-1])
    end = samples[-1]
    c = result["counts"]
    return {
        "mix": mix,
        "callbacks": opts.soak_count,
        "rate": opts.soak_rate,
        "acked": c["2xx"],
        "not_acked": c["503"] + c["other"] + c["connection_errors"] + c["unanswered"],
        "p99_ms": result["latency_ms"]["p99"],
        "rss_mb_warm": warm["rss_mb"],
        "rss_mb_end": end["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "growth_pct": round(100 * (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"], 1),
        "dedupe_window_entries": entries,
        "rss_samples": [(s["t"], s["rss_mb"], s["answered"]) for s in samples],
        "result": result,
    }


# --- main ------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mix",
        action="append",
        choices=[*payloads.MIXES, "all"],
        help="callback mix (repeatable; 'all' = every mix); default json",
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each")
    p.add_argument(
        "--connections",
        type=int,
        default=64,
        help="closed-loop senders; connections opened up front in open loop",
    )
    p.add_argument("--max-connections", type=int, default=2000, help="open-loop cap")
    p.add_argument(
        "--load-fraction",
        type=float,
        default=0.7,
        help="open-loop rate as a share of the saturation rate",
    )
    p.add_argument(
        "--sweep",
        default="",
        metavar="F,F,...",
        help="more open-loop rates as shares of saturation, e.g. 0.3,0.5,0.9 (latency curve)",
    )
    p.add_argument(
        "--overload-factor",
        type=float,
        default=1.5,
        help="overload rate as a multiple of the saturation rate",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=0,
        help="connector server.max_in_flight (default: the connector's own)",
    )
    p.add_argument("--no-peer", action="store_true", help="skip the peer")
    p.add_argument("--no-ceilings", action="store_true", help="skip ceilings (a) and (b)")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also py-spy the connector at saturation for this long",
    )
    p.add_argument("--soak", action="store_true", help="1 M callbacks open loop, RSS sampled")
    p.add_argument("--soak-count", type=int, default=1_000_000)
    p.add_argument(
        "--soak-rate",
        type=float,
        default=0.0,
        help="soak arrival rate; default --load-fraction x a 10 s saturation run",
    )
    p.add_argument("--soak-warmup", type=float, default=60.0, help="seconds before RSS counts")
    p.add_argument(
        "--dedupe-max-entries",
        type=int,
        default=0,
        help="connector dedupe.max_entries (default: the connector's own, 1,000,000)",
    )
    p.add_argument(
        "--media-store",
        choices=["filesystem", "s3", "both"],
        default="filesystem",
        help="the connector's media store (s3: the stack's S3Proxy); both: the connector's "
        "phases once per store, filesystem first (its figures are the ones checked)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds at 200/s; exit 1 unless every callback was acked",
    )
    p.add_argument(
        "--stack-home",
        type=Path,
        default=BENCH / ".stack",
        help="devstack home for the benchmark's own Kafka and registry",
    )
    p.add_argument("--keep-stack", action="store_true", help="leave Kafka and the registry up")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--what", help="name in the result files (default: the mixes, soak, smoke)")
    a = p.parse_args(argv)
    mixes = a.mix or ["json"]
    if "all" in mixes:
        mixes = list(payloads.MIXES)
    what = a.what or ("smoke" if a.smoke else "soak" if a.soak else "-".join(mixes))
    out = a.out if not a.smoke or a.out != BENCH / "results" else RUNS
    return Options(
        mixes=mixes,
        duration=a.duration,
        warmup=a.warmup,
        connections=a.connections,
        load_fraction=a.load_fraction,
        fractions=sorted({a.load_fraction, *(float(f) for f in a.sweep.split(",") if f)}),
        overload_factor=a.overload_factor,
        max_connections=a.max_connections,
        max_in_flight=a.max_in_flight,
        peer=not a.no_peer,
        ceilings=not a.no_ceilings,
        profile=a.profile,
        soak=a.soak,
        soak_count=a.soak_count,
        soak_rate=a.soak_rate,
        soak_warmup=a.soak_warmup,
        dedupe_max_entries=a.dedupe_max_entries,
        media_stores=["filesystem", "s3"] if a.media_store == "both" else [a.media_store],
        smoke=a.smoke,
        stack_home=a.stack_home.resolve(),
        keep_stack=a.keep_stack,
        out=out.resolve(),
        what=what,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    from bench.hostile import commit_of  # here: bench.hostile imports this module
    from connector import devstack

    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = Run(
        started=started,
        command="python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv),
        machine=machine(),
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        commit=commit_of(REPO),
    )
    opts.out.mkdir(parents=True, exist_ok=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=RUNS))
    print(
        f"load average {run.machine['loadavg_start']}; starting Kafka and the registry "
        f"in {opts.stack_home}",
        flush=True,
    )
    endpoints = devstack.up(opts.stack_home)
    failed = False
    try:
        bench = Bench(opts, run, workdir, endpoints)
        if opts.smoke:
            failed = smoke(bench, run)
        elif opts.soak:
            run.soak = soak(bench, opts)
            s = run.soak
            check(
                run,
                "soak: RSS within 10 % after warm-up",
                s["growth_pct"] <= 10,
                f"{s['rss_mb_warm']} -> {s['rss_mb_end']} MB ({s['growth_pct']} %)",
            )
        else:
            for mix in opts.mixes:
                print(f"mix {mix}", flush=True)
                if opts.ceilings:
                    run.phases.append(bench.noop(mix))
                for store in opts.media_stores:
                    run.phases += bench.connector_phases(mix, store)
                if opts.ceilings:
                    sat = next(
                        p
                        for p in run.phases
                        if p["system"] == "connector"
                        and p["mix"] == mix
                        and p["phase"] == "saturate"
                    )
                    count = int(max(100_000, 20 * sat["acked_per_s"]))
                    run.ceilings[mix] = bench.producer_ceiling(mix, count)
                if opts.peer:
                    run.peer[mix] = bench.peer_phases(mix)
                    run.phases += run.peer[mix].get("phases", [])
                first = opts.media_stores[0]
                primary = [p for p in run.phases if p.get("media_store", first) == first]
                checks_for_mix(run, mix, primary, opts)
                compare_stores(run, mix, opts.media_stores)
                peer_sat = next(
                    (
                        p
                        for p in run.phases
                        if p["system"] == "peer" and p["mix"] == mix and p["phase"] == "saturate"
                    ),
                    None,
                )
                ours = next(
                    p
                    for p in run.phases
                    if p["system"] == "connector" and p["mix"] == mix and p["phase"] == "saturate"
                )
                if peer_sat and peer_sat["acked_per_core_s"] and ours["acked_per_core_s"]:
                    check(
                        run,
                        f"{mix}: acked per core >= the peer's",
                        ours["acked_per_core_s"] >= peer_sat["acked_per_core_s"],
                        f"{ours['acked_per_core_s']} vs {peer_sat['acked_per_core_s']} "
                        "callbacks per CPU-second",
                    )
    finally:
        if not opts.keep_stack:
            devstack.down(opts.stack_home)
        shutil.rmtree(workdir / "media-encode", ignore_errors=True)
    run.machine["loadavg_end"] = procstat.load_average()
    stem = f"{started[:10]}-{opts.what}"
    (opts.out / f"{stem}.json").write_text(json.dumps(asdict(run), indent=1, default=str))
    (opts.out / f"{stem}.md").write_text(render(run))
    print(render(run))
    print(f"wrote {opts.out / stem}.json and .md", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def smoke(bench: Bench, run: Run) -> bool:
    """A short check CI may run: the connector acks every callback of a light open-loop load."""
    topic = f"mms.bench.{bench.token}.smoke"
    create_topics(bench.endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
    failed = False
    with bench.connector(topic, bench.opts.media_stores[0]) as (port, pid, log):
        for mix in bench.opts.mixes:
            r = bench.measure(
                "connector",
                "smoke",
                port,
                mix,
                pid,
                mode="open",
                rate=200,
                warmup=1.0,
                duration=3.0,
                connections=8,
            )
            run.phases.append(r)
            c = r["counts"]
            others = ("503", "other", "connection_errors", "unanswered")
            ok = c["2xx"] > 0 and all(c[k] == 0 for k in others)
            check(run, f"smoke {mix}: every callback acked", ok, str(r["counts"]))
            failed |= not ok
    log.unlink(missing_ok=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
