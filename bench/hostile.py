"""The worst inputs per provider against a real server: reply time, peak RSS, event-loop stalls.

    .venv/bin/python -m bench.hostile                          # this checkout
    .venv/bin/python -m bench.hostile --source /tmp/mms-before --what hostile-before
                                                               # another checkout's connector

Starts Kafka and the registry (connector/devstack in `--stack-home`, as bench/run.py does),
then `mms-connector serve` with every provider enabled (bench/stack.py's config), and sends,
input by input, the worst callbacks that fit in the 10 MiB body limit (`ATTACKS`), each
`--repeats` times with fresh ids. For each input: the statuses, the reply time (p50 and max,
from connecting to the last byte of the answer), the server's peak RSS growth (VmHWM reset
through /proc/<pid>/clear_refs before the input, minus VmRSS then) and what stays (VmRSS after),
and the latency of GET /healthz polled on another connection during the input (how long the
event loop was blocked). Targets: every reply < 100 ms, peak RSS growth < 50 MB. Writes
bench/results/<date>-<what>.md and .json with the command and the commit of `--source`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import itertools
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import options, payloads, procstat, report, stack
from bench.paths import REPO, RUNS

MIB = 1024 * 1024
BODY_LIMIT = 10 * MIB  # max_body_bytes' default
BUDGET = 10_000_000  # what the largest bodies aim at, under BODY_LIMIT with their headers
TARGET_MS = 100.0
TARGET_RSS_MB = 50.0
SETTLE_SECONDS = 1.5


# --- the inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    raw_headers: bytes = b""  # pre-built header lines (the header attacks)

    def wire(self, port: int) -> bytes:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {len(self.body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        ).encode()
        return head + self.raw_headers + b"Connection: close\r\n\r\n" + self.body


@dataclass(frozen=True)
class Attack:
    name: str
    provider: str
    what: str
    # The requests of repeat `n` (fresh ids in each, so the dedupe window never answers).
    requests: Callable[[int], list[Request]]


_IDS = itertools.count()


def uid() -> str:
    """An id no other callback of any run carries (digits: OpenMarket's moId is a number)."""
    return f"{os.getpid()}{time.time_ns() // 1_000_000_000}{next(_IDS):07d}"


def _path(provider: str) -> str:
    return payloads.PATHS[provider]


def _json(provider: str, body: bytes) -> list[Request]:
    return [Request(_path(provider), body, "application/json")]


def _seed(path: str) -> Any:
    return json.loads((payloads.PAYLOADS / path).read_text())


def _fill(unit: bytes, head: bytes, tail: bytes, size: int = BUDGET) -> bytes:
    """head + unit repeated + tail, `size` bytes or just under."""
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


def baseline(_n: int) -> list[Request]:
    # One 10 MB JSON string: parsed in milliseconds, refused at once (not an event). What is
    # left is the floor every 10 MB input pays: upload, body assembly, dead-lettering.
    return _json("bandwidth-v2", _fill(b"a", b'"', b'"'))


def bw2_containers(_n: int) -> list[Request]:
    return _json("bandwidth-v2", _fill(b"{},", b"[", b"{}]"))


def _bw2_event() -> dict[str, Any]:
    return {
        "type": "message-received",
        "time": "2024-03-14T15:09:26Z",
        "message": {"id": uid(), "owner": "+19195554321", "from": "+17045551234"},
    }


def bw2_events(_n: int) -> list[Request]:
    # As many small valid events as fit: ~85,000.
    events = []
    size = 2
    while size < BUDGET - 200:
        event = json.dumps(_bw2_event(), separators=(",", ":"))
        events.append(event)
        size += len(event) + 1
    return _json("bandwidth-v2", f"[{','.join(events)}]".encode())


def bw2_budget(_n: int) -> list[Request]:
    # 100 full events (the seed MMS), the most one callback may carry: accepted.
    [seed] = _seed("bandwidth_v2/message_received_mms.json")
    events = []
    for _ in range(100):
        event = json.loads(json.dumps(seed))
        event["message"]["id"] = uid()
        events.append(event)
    return _json("bandwidth-v2", json.dumps(events).encode())


def _bw1_head() -> bytes:
    """A valid Bandwidth v1 event, open for one more member: `..., "x": `."""
    seed = _seed("bandwidth_v1/inbound_mms.json")
    seed["messageId"] = uid()
    return json.dumps(seed)[:-1].encode() + b', "x": '


def bw1_containers(_n: int) -> list[Request]:
    head = _bw1_head()
    return _json("bandwidth-v1", _fill(b"[],", head + b"[", b"[]]}"))


def bw1_members(_n: int) -> list[Request]:
    # One object of ~770,000 members: a single container.
    head = _bw1_head() + b"{"
    count = (BUDGET - len(head)) // len(b'"k1000000":0,')
    members = ",".join(f'"k{i}":0' for i in range(count)).encode()
    return _json("bandwidth-v1", head + members + b"}}")


def bw1_deep(_n: int) -> list[Request]:
    return _json("bandwidth-v1", _fill(b'{"a":', b"", b"1"))


def _mo_details() -> str:
    return json.dumps(
        {
            "type": "MO",
            "moId": int(uid()),
            "source": "447800000001",
            "destinations": ["88600"],
            "date": "2024-06-01T10:00:00Z",
        }
    )


def _multipart(boundary: str, parts: list[str]) -> list[Request]:
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    return [Request(_path("openmarket"), body.encode(), f'multipart/mixed; boundary="{boundary}"')]


def _json_part() -> str:
    return f"Content-Type: application/json\r\nContent-Id: main\r\n\r\n{_mo_details()}"


def om_dashes(_n: int) -> list[Request]:
    body = b"-" * BUDGET
    return [Request(_path("openmarket"), body, "multipart/mixed; boundary=-")]


def om_parts(n: int) -> list[Request]:
    # 50 parts, the most allowed: the details and 49 random images of ~150 KB (7.3 MB raw).
    rng = random.Random(n)
    parts = [_json_part()]
    for i in range(49):
        image = base64.encodebytes(rng.randbytes(150_000)).decode()
        parts.append(
            f"Content-Type: image/jpeg\r\nContent-Id: <p{i}.jpg>\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{image}"
        )
    return _multipart(f"b-{n}", parts)


def om_text(n: int) -> list[Request]:
    # A 5 MB text part (max_part_bytes is 5 MiB): a record past Kafka's message size.
    text = ("Greetings from the beach. " * 200_000)[:5_000_000]
    return _multipart(f"t-{n}", [_json_part(), f"Content-Type: text/plain\r\n\r\n{text}"])


def om_utf7(n: int) -> list[Request]:
    # utf-7 whose "+2AA-" decodes to a lone surrogate (before: a 500 on every retry).
    part = "Content-Type: text/plain; charset=utf-7\r\n\r\nHi +2AA- there +AGEAYgBj-"
    return _multipart(f"u-{n}", [_json_part(), part])


def _postback(inner: str) -> bytes:
    return (
        "<postback><origin>MMS_MO</origin><from>14082257140</from><to>28444</to>"
        f"<tracking-id>MMS_MO_{uid()}</tracking-id>{inner}</postback>"
    ).encode()


def _xml(body: bytes) -> list[Request]:
    return [Request(_path("sinch"), body, "application/xml")]


def sinch_files(_n: int) -> list[Request]:
    files = "<file>https://m.example/a</file>" * 300_000
    return _xml(_postback(f"<content>{files}</content>"))


def sinch_names(n: int) -> list[Request]:
    # 12 callbacks of ~9,500 distinct 1,000-character element names each: 115 MB of names.
    out = []
    for c in range(12):
        pad = "n" * 990
        names = "".join(f"<{pad}{n:02d}{c:02d}{i:05d}/>" for i in range(9_500))
        out += _xml(_postback(names))
    return out


def sinch_deep(_n: int) -> list[Request]:
    head, tail = _postback("|").split(b"|")
    return _xml(_fill(b"<a>", head, tail))


def _header_attack(raw_headers: bytes) -> list[Request]:
    [seed] = _seed("bandwidth_v2/message_received_mms.json")
    seed["message"]["id"] = uid()
    return [
        Request(
            _path("bandwidth-v2"), json.dumps([seed]).encode(), "application/json", (), raw_headers
        )
    ]


def headers_many(_n: int) -> list[Request]:
    return _header_attack(b"X-Pad: a\r\n" * 40_000)


def header_large(_n: int) -> list[Request]:
    return _header_attack(b"X-Pad: " + b"a" * MIB + b"\r\n")


ATTACKS = [
    Attack("baseline-10mb", "bandwidth-v2", "(floor) one 10 MB JSON string", baseline),
    Attack("bw2-containers", "bandwidth-v2", "10 MB of `[{},{},...]`", bw2_containers),
    Attack("bw2-85k-events", "bandwidth-v2", "~85,000 small valid events", bw2_events),
    Attack("bw2-100-events", "bandwidth-v2", "100 full events (the budget)", bw2_budget),
    Attack("bw1-containers", "bandwidth-v1", "valid event + 10 MB of `[[],...]`", bw1_containers),
    Attack(
        "bw1-members", "bandwidth-v1", "valid event + one object of ~770,000 members", bw1_members
    ),
    Attack("bw1-deep", "bandwidth-v1", '10 MB of `{"a":{"a":...`', bw1_deep),
    Attack("om-dashes", "openmarket", "boundary `-`, 10 MB of dashes", om_dashes),
    Attack("om-50-parts", "openmarket", "50 parts: 49 base64 images of 150 KB", om_parts),
    Attack("om-5mb-text", "openmarket", "a 5 MB text part", om_text),
    Attack("om-utf7", "openmarket", "utf-7 text decoding to a lone surrogate", om_utf7),
    Attack("sinch-300k-files", "sinch", "300,000 `<file>` elements (9.6 MB)", sinch_files),
    Attack("sinch-names", "sinch", "12 callbacks, 115 MB of distinct element names", sinch_names),
    Attack("sinch-deep", "sinch", "10 MB of `<a><a>...`", sinch_deep),
    Attack("headers-40k", "(HTTP)", "40,000 repeated headers", headers_many),
    Attack("header-1mb", "(HTTP)", "one 1 MB header", header_large),
]


# --- measuring -------------------------------------------------------------------------------


def send(port: int, request: bytes, timeout: float = 120) -> tuple[int, float]:
    """Send one request on a new connection; its status (0: no answer) and seconds from
    connecting to the end of the answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # Answered (and closed) before the body was all sent: the answer is still there.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        status = _read_status(sock)
    return status, time.perf_counter() - started


def _read_status(sock: socket.socket) -> int:
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            (
                int(v)
                for k, _, v in (h.partition(":") for h in lines[1:])
                if k.lower() == "content-length"
            ),
            0,
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
    except OSError:
        return 0


class HealthPoller(threading.Thread):
    """GET /healthz on one keep-alive connection every 10 ms; latencies in ms."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                self.latencies.append((time.perf_counter() - started) * 1000)
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.stop.wait(0.01)
        conn.close()


def vm_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Result:
    name: str
    provider: str
    what: str
    body_bytes: int
    statuses: dict[str, int] = field(default_factory=dict)
    reply_ms: list[float] = field(default_factory=list)
    rss_before_mb: float = 0.0
    peak_growth_mb: float = 0.0
    retained_growth_mb: float = 0.0
    peak_reset: bool = True
    healthz_max_ms: float = 0.0
    healthz_p50_ms: float = 0.0
    healthz_polls: int = 0
    server_alive: bool = True

    @property
    def p50_ms(self) -> float:
        return round(statistics.median(self.reply_ms), 1)

    @property
    def max_ms(self) -> float:
        return round(max(self.reply_ms), 1)

    @property
    def met(self) -> bool:
        return self.max_ms < TARGET_MS and self.peak_growth_mb < TARGET_RSS_MB


def attack(port: int, pid: int, spec: Attack, repeats: int) -> Result:
    batches = [[r.wire(port) for r in spec.requests(n)] for n in range(repeats)]
    result = Result(spec.name, spec.provider, spec.what, max(len(b) for b in batches[0]))
    time.sleep(SETTLE_SECONDS)  # let the previous input's work settle
    result.peak_reset = reset_peak(pid)
    before = vm_kib(pid, "VmRSS")
    poller = HealthPoller(port)
    poller.start()
    time.sleep(0.05)
    for n, batch in enumerate(batches):
        if n:
            # Past a stall the loop-lag gate sheds load for a moment: each repeat meets a
            # recovered server, not the previous repeat's after-effect.
            time.sleep(SETTLE_SECONDS)
        for wire in batch:
            status, seconds = send(port, wire)
            result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
            result.reply_ms.append(round(seconds * 1000, 1))
    time.sleep(0.05)
    poller.stop.set()
    poller.join()
    result.server_alive = procstat.alive(pid)
    if result.server_alive:
        result.rss_before_mb = round(before / 1024, 1)
        result.peak_growth_mb = round((vm_kib(pid, "VmHWM") - before) / 1024, 1)
        result.retained_growth_mb = round((vm_kib(pid, "VmRSS") - before) / 1024, 1)
    if poller.latencies:
        result.healthz_max_ms = round(max(poller.latencies), 1)
        result.healthz_p50_ms = round(statistics.median(poller.latencies), 1)
    result.healthz_polls = len(poller.latencies)
    return result


# --- the run ---------------------------------------------------------------------------------


def render(run: dict[str, Any], before: dict[str, Any] | None) -> str:
    lines = [
        f"# Hostile inputs, {run['started'][:10]}",
        "",
        f"Command: `{run['command']}`  ",
        f"Connector: `{run['source']}` at commit `{run['commit']}`; load average at start "
        f"{run['loadavg_start']}, at end {run['loadavg_end']}; {run['cpus']} cores; "
        f"repeats per input: {run['repeats']} (fresh ids in each).",
        "",
        "Reply time: connect to the last byte of the answer, body upload included. Peak RSS "
        "growth: VmHWM after the input (reset through /proc/<pid>/clear_refs before it) minus "
        "VmRSS before it; retained: VmRSS after minus before. /healthz: GET every 10 ms on "
        "another connection during the input; its max is how long the event loop was blocked.",
        "",
        "| input | provider | body | statuses | reply p50 / max ms | peak RSS growth MB "
        "| retained MB | /healthz max ms (polls) | < 100 ms | < 50 MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in run["results"]:
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(r["statuses"].items()))
        peak = f"{r['peak_growth_mb']}" + ("" if r["peak_reset"] else " (no reset)")
        alive = "" if r["server_alive"] else " **server died**"
        lines.append(
            f"| {r['name']}: {r['what']} | {r['provider']} | {r['body_bytes'] / MIB:.2f} MiB "
            f"| {statuses}{alive} | {r['p50_ms']} / {r['max_ms']} | {peak} "
            f"| {r['retained_growth_mb']} | {r['healthz_max_ms']} ({r['healthz_polls']}) "
            f"| {'yes' if r['max_ms'] < TARGET_MS else '**no**'} "
            f"| {'yes' if r['peak_growth_mb'] < TARGET_RSS_MB else '**no**'} |"
        )
    met = sum(r["met"] for r in run["results"])
    lines += ["", f"Targets (max reply < {TARGET_MS:.0f} ms and peak RSS growth < "
              f"{TARGET_RSS_MB:.0f} MB) met by {met} of {len(run['results'])} inputs."]  # fmt: skip
    if before:
        lines += [
            "",
            f"## Before and after (before: `{before['source']}` at `{before['commit']}`)",
            "",
            "| input | statuses before -> after | reply max ms | peak RSS growth MB "
            "| /healthz max ms |",
            "| --- | --- | --- | --- | --- |",
        ]
        old = {r["name"]: r for r in before["results"]}
        for r in run["results"]:
            b = old.get(r["name"])
            if b is None:
                continue
            lines.append(
                f"| {r['name']} | {_statuses(b)} -> {_statuses(r)} "
                f"| {b['max_ms']} -> {r['max_ms']} | {b['peak_growth_mb']} -> "
                f"{r['peak_growth_mb']} | {b['healthz_max_ms']} -> {r['healthz_max_ms']} |"
            )
    return "\n".join(lines) + "\n"


def _statuses(r: dict[str, Any]) -> str:
    return "/".join(sorted(r["statuses"]))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, default=REPO, help="checkout whose connector/ to run")
    p.add_argument("--repeats", type=int, default=3, help="sends per input (default 3)")
    p.add_argument("--only", action="append", choices=[a.name for a in ATTACKS])
    p.add_argument("--before", type=Path, help="a previous run's JSON: add a before/after table")
    options.add_stack_and_output(p, "hostile")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    source = args.source.resolve()
    run: dict[str, Any] = {
        "started": report.now(),
        "command": report.command("bench.hostile", argv),
        "source": str(source),
        "commit": report.commit_of(source),
        "loadavg_start": procstat.load_average(),
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "results": [],
    }
    RUNS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="hostile-", dir=RUNS))
    print(f"connector from {source} ({run['commit']}); stack in {args.stack_home}", flush=True)
    with stack.running(args.stack_home, args.keep_stack) as endpoints:
        topic = f"mms.hostile.{os.getpid()}.{int(time.time())}"
        stack.create_topics(endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
        env = {"PYTHONPATH": str(source)}
        media = workdir / "media"
        with stack.serve_connector(workdir, "connector", endpoints, topic, media, env) as served:
            port, proc, _log = served
            for spec in ATTACKS:
                if args.only and spec.name not in args.only:
                    continue
                if not procstat.alive(proc.pid):
                    print(f"  {spec.name}: skipped, the server is gone", flush=True)
                    continue
                if spec.provider not in payloads.PATHS and spec.provider != "(HTTP)":
                    print(f"  {spec.name}: skipped, no provider {spec.provider}", flush=True)
                    continue
                r = attack(port, proc.pid, spec, args.repeats)
                run["results"].append(
                    asdict(r) | {"p50_ms": r.p50_ms, "max_ms": r.max_ms, "met": r.met}
                )
                print(
                    f"  {r.name:<17} {r.statuses}  reply p50 {r.p50_ms} max {r.max_ms} ms  "
                    f"peak {r.peak_growth_mb:+} MB  retained {r.retained_growth_mb:+} MB  "
                    f"healthz max {r.healthz_max_ms} ms",
                    flush=True,
                )
    run["loadavg_end"] = procstat.load_average()
    before = json.loads(args.before.read_text()) if args.before else None
    stem = f"{run['started'][:10]}-{args.what}"
    report.write(args.out, stem, run, render(run, before), f" (logs in {workdir})")
    return 0 if all(r["met"] for r in run["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
