"""What a benchmark run records and how it is written: `Run` (the figures of
`python -m bench.run`), the machine and commit every result names, and the result files,
bench/results/<date>-<what>.json (everything) and .md (the tables and the targets)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procstat


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


# --- what every result names -----------------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command(prog: str, argv: list[str] | None) -> str:
    """The command line as run (`argv` None: this process's)."""
    return f"python -m {prog} " + " ".join(sys.argv[1:] if argv is None else argv)


def commit_of(source: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "connector")
    return git("rev-parse", "--short", "HEAD") + (" (connector/ modified)" if dirty else "")


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


def heading(
    title: str, started: str, command: str, commit: str, machine: dict[str, Any]
) -> list[str]:
    """The first lines of a result's Markdown: what and when, the command, commit, machine."""
    return [
        f"# {title} ({started})",
        "",
        f"Command: `{command}`  ",
        f"Commit: `{commit}`  ",
        f"Machine: {machine['cpus']} CPUs, {machine['cpu_model']}; "
        f"Python {machine['python']}; load average at start {machine['loadavg_start']}",
    ]


def options_record(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON values (paths as text)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}


def write(out: Path, stem: str, record: Any, markdown: str, more: str = "") -> None:
    """out/<stem>.json and .md, the Markdown printed, then where they went (and `more`)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / stem
    Path(f"{path}.json").write_text(json.dumps(record, indent=1, default=str))
    Path(f"{path}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {path}.json and .md{more}", flush=True)


# --- the Markdown of a bench.run ---------------------------------------------------------------


def others(phase: dict[str, Any]) -> float | None:
    """Cores used by processes other than the server, the broker and the load generator."""
    spent = phase["cpu_s"].get("others")
    return round(spent / phase["duration_s"], 2) if spent is not None else None


def workers_run(run: Run) -> bool:
    """Whether the run set the connector's workers or shared window (its rows then say so)."""
    return run.options.get("workers", [1]) != [1] or bool(run.options.get("shared_window"))


def label(run: Run, p: dict[str, Any]) -> str:
    """A phase's system as its row names it: "connector (2 workers, filesystem)"."""
    parts: list[str] = []
    if "workers" in p and workers_run(run):
        parts.append(f"{p['workers']} worker" + ("s" if p["workers"] != 1 else ""))
    if "media_store" in p:
        parts.append(str(p["media_store"]))
    return str(p["system"]) + (f" ({', '.join(parts)})" if parts else "")


def workers_table(run: Run) -> list[str]:
    """Per mix and store, the connector's saturation with each `--workers` value side by side,
    each against the first, with the load generator's and Redis's CPU beside it."""
    if not workers_run(run):
        return []
    workers = run.options.get("workers", [1])
    fraction = f"{round(run.options.get('load_fraction', 0.7) * 100)}%"

    def key(p: dict[str, Any]) -> tuple[str, Any, Any]:
        return p["mix"], p.get("media_store"), p.get("workers", 1)

    sats: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    below: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    for p in run.phases:
        if p["system"] == "connector" and p["phase"] == "saturate":
            sats.setdefault(key(p), p)
        elif p["system"] == "connector" and p["phase"] == fraction:
            below.setdefault(key(p), p)
    if not sats:
        return []
    lines = [
        "",
        "## Workers (the connector at saturation, its whole process tree)",
        "",
        "Shared duplicate window (dedupe.shared, the stack's Redis): "
        f"{'on' if run.options.get('shared_window') else 'off'}. Ratios (x) against "
        f"{workers[0]} worker{'s' if workers[0] != 1 else ''}. Cores: CPU s over the measured "
        "window; the connector, the load generator, the broker and Redis share the machine. "
        "Shared-window errors: calls to Redis that failed or overran their timeout over all of "
        "that connector's phases (the callback then went on with the worker's own window).",
        "",
        f"| mix | store | workers | acked/s | p99 ms | p99 ms at {fraction} | server cores | "
        "CPU s / 1000 | acked / core-s | x acked/s | x per core-s | loadgen cores | "
        "broker cores | Redis cores | other processes' cores | shared-window errors | "
        "load avg |",
        "|" + " --- |" * 17,
    ]
    for (mix, store, n), p in sats.items():
        base = sats.get((mix, store, workers[0]), {})
        ratios = [
            f"{p[k] / base[k]:.2f}" if p[k] and base.get(k) else "-"
            for k in ("acked_per_s", "acked_per_core_s")
        ]
        cores = [
            round(p["cpu_s"][k] / p["duration_s"], 2) if k in p["cpu_s"] else "-"
            for k in ("broker", "redis")
        ]
        errors = sum(
            v
            for k, v in p.get("connector_counters", {}).items()
            if k.startswith("mms_shared_window_errors_total")
        )
        p99_below = below.get((mix, store, n), {}).get("latency_ms", {}).get("p99")
        lines.append(
            f"| {mix} | {store} | {n} | {p['acked_per_s']} | {p['latency_ms']['p99']} | "
            f"{p99_below} | {p['server_cores']} | {p['server_cpu_s_per_1000']} | "
            f"{p['acked_per_core_s']} | {ratios[0]} | {ratios[1]} | "
            f"{round(p['loadgen_cpu_s'] / p['duration_s'], 2)} | {cores[0]} | {cores[1]} | "
            f"{others(p)} | {int(errors)} | {p['loadavg_start'][0]} |"
        )
    return lines


def render(run: Run) -> str:
    title = f"Connector benchmark: {run.options['what']}"
    lines = [
        *heading(title, run.started, run.command, run.commit, run.machine),
        "",
        "Broker, registry, load generator and server share the machine. Latency runs from each "
        "request's scheduled time (open loop) or send time (closed loop). CPU and RSS are the "
        "server's (threads included; with workers, its whole process tree: the supervisor and "
        "every worker), over the measured window.",
        "",
        "| system | mix | phase | offered/s | acked/s | p50 ms | p95 ms | p99 ms | max ms | "
        "2xx | 503 (Retry-After) | other / conn err | server cores | CPU s / 1000 | "
        "acked / core-s | RSS MB before → after | broker CPU s | S3Proxy CPU s | loadgen CPU s | "
        "other processes' cores | load avg |",
        "|" + " --- |" * 21,
    ]
    for p in run.phases:
        lat, c = p["latency_ms"], p["counts"]
        system = label(run, p)
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
            lines.append(f"- {label(run, p)} {p['mix']} ({p['duration_s']} s): {shares}")
            procs = p.get("server_process_cpu_s", {})
            if len(procs) > 1:
                by_process = ", ".join(f"{k} {v}" for k, v in procs.items())
                lines.append(f"  - by process (pid, name): {by_process}")
    lines += workers_table(run)
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
