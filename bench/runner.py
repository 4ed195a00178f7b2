"""Driving a `python -m bench.run` on a stack that is up: the phases of each system under test
(`Bench`: the no-op endpoint, the connector, the raw producer, the peer), each measured by the
load generator in a process of its own, and what a run is made of (`mixes`, `soak`, `smoke`)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import loadgen, payloads, peer, procstat, producer_ceiling, profiling, targets
from bench.loadgen import Spec
from bench.options import Options
from bench.paths import PY, REPO
from bench.processes import free_port, log_summary, server, wait_http, wait_port
from bench.report import Run
from bench.stack import (
    create_topics,
    s3_delete_prefix,
    s3_media,
    serve_connector,
    shared_window,
    stack_pids,
)


def summary(name: str, phase: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A phase's result as the run records it, and its line on the console."""
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
    """The systems under test on one stack, and the phases each is measured in."""

    def __init__(self, opts: Options, run: Run, workdir: Path, endpoints: Any) -> None:
        self.opts = opts
        self.run = run
        self.workdir = workdir
        self.endpoints = endpoints
        self.token = secrets.token_hex(2)
        self.phase_no = 0
        self.broker = stack_pids(opts.stack_home)

    def prefix(self) -> str:
        self.phase_no += 1
        return f"{self.token}p{self.phase_no:02d}"

    def measure(
        self, system: str, phase: str, port: int, mix: str, pid: int, **kw: Any
    ) -> dict[str, Any]:
        loadavg = procstat.load_average()
        spec = spec_for(port, mix, pid, self.opts, self.prefix(), watch_pids=self.broker, **kw)
        result = loadgen.run(spec, self.workdir, f"{system}-{mix}-{phase}")
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
    def connector(
        self, topic: str, store: str = "filesystem", workers: int = 1
    ) -> Iterator[tuple[int, int, Path]]:
        """The connector serving `topic`; yields its port, its pid (with workers: the
        supervisor's, whose process tree the CPU and RSS figures cover) and its log."""
        root = self.workdir / f"media-{topic}"
        prefix = f"bench/{topic}/"
        media, env = s3_media(self.endpoints, prefix) if store == "s3" else (root, {})
        settings: dict[str, Any] = {
            "max_in_flight": self.opts.max_in_flight,
            "dedupe_max_entries": self.opts.dedupe_max_entries,
            "workers": workers,
        }
        if self.opts.shared_window:
            settings["shared"], redis_env = shared_window(self.endpoints)
            env = {**env, **redis_env}
        try:
            with serve_connector(
                self.workdir, f"connector-{topic}", self.endpoints, topic, media, env, **settings
            ) as (port, proc, log):
                yield port, proc.pid, log
        finally:
            shutil.rmtree(root, ignore_errors=True)
            if store == "s3":
                s3_delete_prefix(self.opts.stack_home, self.endpoints.s3_bucket, prefix)

    def connector_phases(self, mix: str, store: str, workers: int = 1) -> list[dict[str, Any]]:
        opts = self.opts
        topic = f"mms.bench.{self.token}.{mix}.{store}" + (f".w{workers}" if workers > 1 else "")
        create_topics(self.endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
        out = []
        with self.connector(topic, store, workers) as (port, pid, log):
            counted = connector_counters(port)
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
                out[-1]["profile"] = self.profile(port, pid, mix, workers)
            # The connector's own counters over the phases (every worker's: any worker's
            # /metrics answers for all): fail-open calls to the shared window, outcomes.
            after = connector_counters(port)
            counted = {k: v - counted.get(k, 0.0) for k, v in after.items()}
            counted = {k: v for k, v in counted.items() if v}
            for result in out:
                result["connector_counters"] = counted
        levels, warnings = log_summary(log)
        for result in out:
            result["connector_log_lines"] = levels
            result["connector_log_warnings"] = warnings
            result["media_store"] = store
            result["workers"] = workers
            result["shared_window"] = opts.shared_window
        log.unlink(missing_ok=True)
        return out

    def profile(self, port: int, pid: int, mix: str, workers: int = 1) -> dict[str, Any]:
        """py-spy on the connector (every worker) during an extra closed-loop run (not one of
        the figures)."""
        if not profiling.PY_SPY.exists():
            return {"skipped": profiling.UNAVAILABLE}
        raw = self.opts.out / f"{self.run.started[:10]}-{self.opts.what}-{mix}-profile.txt"
        if len(self.opts.workers) > 1:  # one file per workers value
            raw = raw.with_name(raw.name.replace("-profile", f"-w{workers}-profile"))
        seconds = self.opts.profile
        with profiling.recording(pid, seconds, raw, subprocesses=workers > 1):
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
        return {
            "collapsed_stacks": raw.name,  # beside the result files
            "acked_per_s": result["acked_per_s"],
            "top": profiling.top_frames(raw),
        }

    # (b) -----------------------------------------------------------------------------------

    def producer_ceiling(self, mix: str, count: int) -> dict[str, Any]:
        topic = f"mms.bench.{self.token}.{mix}.raw"
        return producer_ceiling.measure(self.endpoints, self.workdir, topic, mix, count)

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


# The connector's counters a run records (summed over their other labels but these).
COUNTERS = {
    "mms_callbacks_total": "outcome",
    "mms_shared_window_claims_total": "outcome",
    "mms_shared_window_errors_total": "op",
    "mms_kafka_errors_total": "",
}


def connector_counters(port: int) -> dict[str, float]:
    """The connector's COUNTERS now, from /metrics ({} if it does not answer)."""
    out: dict[str, float] = {}
    url = f"http://127.0.0.1:{port}/metrics"
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            name, _, rest = line.partition("{")
            if not rest:
                name, _, rest = line.partition(" ")
            if name not in COUNTERS:
                continue
            key, label = name, COUNTERS[name]
            if label and f'{label}="' in rest:
                key += "." + rest.split(f'{label}="', 1)[1].split('"', 1)[0]
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# --- what a run is made of --------------------------------------------------------------------


def sendable(run: Run, mix: str) -> bool:
    """Whether the connector has a provider the mix sends callbacks of; if not, a note says so."""
    if payloads.providers_of(mix):
        return True
    note = f"mix {mix}: the connector has none of its providers; skipped"
    print(f"note: {note}", flush=True)
    run.notes.append(note)
    return False


def mixes(bench: Bench, run: Run, opts: Options) -> None:
    """Per mix: (a), the connector's phases per media store, (b), the peer; then the targets."""
    for mix in opts.mixes:
        print(f"mix {mix}", flush=True)
        if not sendable(run, mix):
            continue
        if opts.ceilings:
            run.phases.append(bench.noop(mix))
        for store in opts.media_stores:
            for workers in opts.workers:
                run.phases += bench.connector_phases(mix, store, workers)
        if opts.ceilings:
            sat = targets.saturation(run, "connector", mix)
            assert sat is not None
            count = int(max(100_000, 20 * sat["acked_per_s"]))
            run.ceilings[mix] = bench.producer_ceiling(mix, count)
        if opts.peer:
            run.peer[mix] = bench.peer_phases(mix)
            run.phases += run.peer[mix].get("phases", [])
        targets.check_mix(run, mix, opts)


def soak(bench: Bench, opts: Options) -> dict[str, Any]:
    mix = opts.mixes[0]
    topic = f"mms.bench.{bench.token}.soak"
    create_topics(bench.endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
    warmup = opts.soak_warmup
    with bench.connector(topic, opts.media_stores[0], opts.workers[0]) as (port, pid, log):
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


def smoke(bench: Bench, run: Run) -> bool:
    """A short check CI may run: the connector acks every callback of a light open-loop load.
    True if it failed."""
    topic = f"mms.bench.{bench.token}.smoke"
    create_topics(bench.endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
    failed = False
    opts = bench.opts
    with bench.connector(topic, opts.media_stores[0], opts.workers[0]) as (port, pid, log):
        for mix in bench.opts.mixes:
            if not sendable(run, mix):
                continue
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
            failed |= not targets.check_smoke(run, mix, r)
    log.unlink(missing_ok=True)
    return failed or not run.phases
