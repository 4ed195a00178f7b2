"""HTTP/1.1 load generator: raw asyncio protocols on uvloop, keep-alive, no pipelining.

Run as its own process (`python -m bench.loadgen SPEC.json OUT.json`, or `run(spec, ...)` from
a benchmark) so its CPU is not the server's. Two modes:

- open: requests are *scheduled* at a fixed arrival rate, whatever the server does; latency runs
  from each request's scheduled time, so time spent waiting for a free connection counts
  (no coordinated omission). A request finding every connection busy opens a new one, up to
  `max_connections`, as providers do; past that it waits in the client's queue (reported).
- closed: `connections` senders, each sending its next request as soon as the previous answer
  arrived: the saturation throughput.

Requests are pre-built (`bench.payloads.Template`), each with a unique id token in its slots.
Only requests scheduled inside the measured window (after the warm-up) are counted; answers to
them still arriving after the window are waited for (`drain_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from bench import payloads, procstat
from bench.processes import run_module

perf = time.perf_counter


@dataclass
class Spec:
    host: str
    port: int
    mix: str
    mode: str = "open"  # open | closed
    rate: float = 1000.0  # open: arrivals per second
    connections: int = 64  # open: opened up front; closed: the senders
    max_connections: int = 2000  # open: the most it may open
    warmup: float = 3.0
    duration: float = 10.0
    count: int = 0  # open: stop after scheduling this many (soak); 0: use duration
    prefix: str = "b"  # unique per phase: ids never repeat across phases
    server_pid: int = 0
    watch_pids: dict[str, int] = field(default_factory=dict)  # e.g. the broker
    sample_seconds: float = 1.0
    drain_seconds: float = 10.0


# Servers close keep-alive connections idle this long (uvicorn: 5 s); a request sent just as
# the server closes one fails. The generator retires its idle connections a little earlier.
IDLE_CLOSE_S = 4.0


class Conn(asyncio.Protocol):
    __slots__ = ("buf", "busy", "closing", "gen", "idle_since", "started", "transport")

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.started = 0.0
        self.idle_since = 0.0
        self.busy = False
        self.closing = False  # the server said it closes this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                total = end + 4 + int(head[at + 17 : stop if stop >= 0 else end])
            elif b"\r\ntransfer-encoding: chunked" in head:
                last = buf.find(b"\r\n0\r\n\r\n", end)
                if last < 0:
                    break
                total = last + 7
            else:
                total = end + 4
            if len(buf) < total:
                break
            status = int(head[9:12])
            retry_after = b"\r\nretry-after:" in head
            buf = buf[total:]
            self.gen.answered(self, status, retry_after, b"\r\nconnection: close" in head)
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gen.lost(self)


class Generator:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        templates = payloads.mix(spec.mix)
        host = f"{spec.host}:{spec.port}"
        self.requests = [t.request(host) for t, _w in templates]
        self.order = payloads.sequence(templates)
        self.tokens: Iterator[bytes] = payloads.tokens(spec.prefix)
        self.n = 0
        self.idle: deque[Conn] = deque()
        self.pending: deque[float] = deque()
        self.conns = 0
        self.opened = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_pending = 0
        self.stopping = False
        self.window = (float("inf"), float("inf"))
        # per answered request scheduled in the window: latency, completion time, status
        self.latency = array("d")
        self.finished = array("d")
        self.status = array("H")
        self.retry_after_503 = 0
        self.errors = 0
        self.connect_errors = 0
        self.issued = 0
        self.loop = asyncio.get_running_loop()

    # --- sending ---------------------------------------------------------------------------

    def send(self, conn: Conn, scheduled: float) -> None:
        chunks = self.requests[self.order[self.n % len(self.order)]]
        self.n += 1
        token = next(self.tokens)
        parts = [chunks[0]]
        for chunk in chunks[1:]:
            parts.append(token)
            parts.append(chunk)
        conn.started = scheduled
        conn.busy = True
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        assert conn.transport is not None
        conn.transport.writelines(parts)

    def dispatch(self, scheduled: float) -> None:
        """Open loop: a request is due; send it now, or as soon as a connection is free."""
        self.issued += 1
        if self.idle:
            self.send(self.idle.pop(), scheduled)
            return
        self.pending.append(scheduled)
        if len(self.pending) > self.max_pending:
            self.max_pending = len(self.pending)
        if self.conns < self.spec.max_connections:
            self.loop.create_task(self.open())

    async def open(self) -> None:
        self.conns += 1
        try:
            transport, conn = await self.loop.create_connection(
                lambda: Conn(self), self.spec.host, self.spec.port
            )
        except OSError:
            self.conns -= 1
            self.connect_errors += 1
            await asyncio.sleep(0.05)
            return
        # uvloop may call connection_made only after create_connection has returned.
        conn.transport = cast(asyncio.Transport, transport)
        self.opened += 1
        self.free(conn)

    def free(self, conn: Conn) -> None:
        if conn.closing:
            # A request sent on it now is lost (and was counted a connection error).
            if self.spec.mode == "closed" and not self.stopping:
                self.loop.create_task(self.open())  # the sender goes on, on a new one
            return
        if self.stopping:
            self.idle.append(conn)
        elif self.spec.mode == "closed":
            self.issued += 1
            self.send(conn, perf())
        elif self.pending:
            self.send(conn, self.pending.popleft())
        else:
            conn.idle_since = perf()
            self.idle.append(conn)  # most recently used on the right: dispatch pops there

    async def retire_idle(self) -> None:
        """Close connections idle for IDLE_CLOSE_S (the least recently used are on the left)."""
        while True:
            await asyncio.sleep(0.5)
            horizon = perf() - IDLE_CLOSE_S
            while self.idle and self.idle[0].idle_since < horizon:
                conn = self.idle.popleft()
                if conn.transport is not None:
                    conn.transport.close()

    # --- answers ---------------------------------------------------------------------------

    def answered(self, conn: Conn, status: int, retry_after: bool, closing: bool) -> None:
        if not conn.busy:
            # Answered before a request went out: the server refused the connection itself
            # (the connector past server.max_connections), and the request waits for another.
            conn.closing = True
            return
        now = perf()
        conn.busy = False
        self.in_flight -= 1
        if self.window[0] <= conn.started < self.window[1]:
            self.latency.append(now - conn.started)
            self.finished.append(now)
            self.status.append(status)
            if status == 503 and retry_after:
                self.retry_after_503 += 1
        conn.closing = closing  # `connection: close`, as the connector's refusals say
        self.free(conn)

    def lost(self, conn: Conn) -> None:
        self.conns -= 1
        if conn.busy:
            conn.busy = False
            self.in_flight -= 1
            if self.window[0] <= conn.started < self.window[1]:
                self.errors += 1
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)

    # --- driving ---------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        for _ in range(spec.connections):
            await self.open()
        if not self.opened:
            raise SystemExit(f"cannot connect to {spec.host}:{spec.port}")
        watched = {"server": spec.server_pid, **spec.watch_pids} if spec.server_pid else {}
        watched = {k: v for k, v in watched.items() if v}
        rss_before = procstat.tree_rss_bytes(spec.server_pid) if spec.server_pid else 0
        samples: list[dict[str, float]] = []
        t0 = perf()
        # A count-bound run (soak) ends when the last request is scheduled: open-ended till then.
        ends = float("inf") if spec.count else t0 + spec.warmup + spec.duration
        self.window = (t0 + spec.warmup, ends)
        sampler = asyncio.create_task(self.sample(t0, samples))
        retirer = asyncio.create_task(self.retire_idle())
        cpu0: dict[str, float] = {}
        threads0: dict[str, float] = {}
        procs0: dict[int, tuple[str, float]] = {}
        own0 = 0.0

        async def at_window_start() -> None:
            nonlocal own0
            await asyncio.sleep(max(0.0, self.window[0] - perf()))
            cpu0.update({k: server_cpu(k, p) for k, p in watched.items()})
            if spec.server_pid:
                threads0.update(procstat.tree_thread_cpu_seconds(spec.server_pid))
                procs0.update(procstat.process_cpu_seconds(spec.server_pid))
            own0 = sum(os.times()[:2])
            cpu0["machine"] = procstat.machine_busy_seconds()

        starter = asyncio.create_task(at_window_start())
        if spec.mode == "closed":
            for conn in list(self.idle):
                self.idle.remove(conn)
                self.free(conn)
            await asyncio.sleep(spec.warmup + spec.duration)
        else:
            await self.open_loop(t0)
        await starter
        end = perf() if spec.count else self.window[1]
        self.window = (self.window[0], end)
        cpu1 = {k: server_cpu(k, p) for k, p in watched.items()}
        threads1 = procstat.tree_thread_cpu_seconds(spec.server_pid) if spec.server_pid else {}
        procs1 = procstat.process_cpu_seconds(spec.server_pid) if spec.server_pid else {}
        threads = {
            name: round(t - threads0.get(name, 0.0), 2)
            for name, t in sorted(threads1.items(), key=lambda kv: -kv[1])
            if t - threads0.get(name, 0.0) >= 0.01
        }
        own1 = sum(os.times()[:2])
        cpu1["machine"] = procstat.machine_busy_seconds()
        self.stopping = True
        deadline = perf() + spec.drain_seconds
        while (self.in_flight or self.pending) and perf() < deadline:
            await asyncio.sleep(0.01)
        sampler.cancel()
        retirer.cancel()
        rss_after = procstat.tree_rss_bytes(spec.server_pid) if spec.server_pid else 0
        unanswered = self.in_flight + len(self.pending)
        for conn in list(self.idle):
            if conn.transport is not None:
                conn.transport.close()
        duration = end - self.window[0]
        result = self.report(
            duration, cpu0, cpu1, own1 - own0, rss_before, rss_after, unanswered, samples
        )
        result["server_thread_cpu_s"] = threads
        # Per process of the server's tree (a supervisor and its workers): how the kernel
        # spread the connections shows here. A process started within the window counts from 0.
        result["server_process_cpu_s"] = {
            f"{pid} {name}": round(cpu - procs0.get(pid, (name, 0.0))[1], 2)
            for pid, (name, cpu) in procs1.items()
        }
        return result

    async def open_loop(self, t0: float) -> None:
        spec = self.spec
        rate = spec.rate
        stop = t0 + spec.warmup + spec.duration
        issued = 0
        while True:
            now = perf()
            due = int((now - t0) * rate) + 1
            if spec.count:
                due = min(due, spec.count)
            elif now >= stop:
                break
            while issued < due:
                self.dispatch(t0 + issued / rate)
                issued += 1
            if spec.count and issued >= spec.count:
                break
            # Until the next arrival, but at least 1 ms: libuv timers have 1 ms resolution and
            # a shorter sleep would spin. At 5,000/s that sends bursts of ~5 every millisecond.
            await asyncio.sleep(max(0.001, t0 + issued / rate - perf()))

    async def sample(self, t0: float, samples: list[dict[str, float]]) -> None:
        pid = self.spec.server_pid
        while pid:
            pids = procstat.tree(pid)
            samples.append(
                {
                    "t": round(perf() - t0, 2),
                    "rss_mb": round(procstat.tree_rss_bytes(pid, pids) / 2**20, 1),
                    "cpu_s": procstat.tree_cpu_seconds(pid, pids),
                    "answered": len(self.status),
                }
            )
            await asyncio.sleep(self.spec.sample_seconds)

    def report(
        self,
        duration: float,
        cpu0: dict[str, float],
        cpu1: dict[str, float],
        own_cpu: float,
        rss_before: int,
        rss_after: int,
        unanswered: int,
        samples: list[dict[str, float]],
    ) -> dict[str, Any]:
        end = self.window[1]
        statuses = self.status
        ok = [lat for lat, s in zip(self.latency, statuses, strict=True) if 200 <= s < 300]
        acked_in_window = sum(
            1 for t, s in zip(self.finished, statuses, strict=True) if t <= end and 200 <= s < 300
        )
        counts = {
            "2xx": sum(1 for s in statuses if 200 <= s < 300),
            "503": sum(1 for s in statuses if s == 503),
            "503_with_retry_after": self.retry_after_503,
            "other": sum(1 for s in statuses if not (200 <= s < 300 or s == 503)),
            "5xx": sum(1 for s in statuses if s >= 500),
            "connection_errors": self.errors,
            "unanswered": unanswered,
        }
        cpu = {k: round(cpu1[k] - cpu0.get(k, cpu1[k]), 2) for k in cpu1}
        server_cpu = cpu.get("server", 0.0)
        # Everything else on the machine: other people's tests disturb a figure; this says so.
        ours = sum(v for k, v in cpu.items() if k != "machine") + own_cpu
        cpu["others"] = round(max(0.0, cpu.get("machine", 0.0) - ours), 2)
        acked = counts["2xx"]
        return {
            "mode": self.spec.mode,
            "offered_per_s": self.spec.rate if self.spec.mode == "open" else None,
            "scheduled": self.issued,
            "duration_s": round(duration, 2),
            "acked_per_s": round(acked_in_window / duration, 1),
            "counts": counts,
            "latency_ms": percentiles(ok),
            "latency_all_ms": percentiles(list(self.latency)),
            "cpu_s": cpu,
            "loadgen_cpu_s": round(own_cpu, 2),
            "server_cores": round(server_cpu / duration, 2),
            "server_cpu_s_per_1000": round(1000 * server_cpu / acked, 3) if acked else None,
            "acked_per_core_s": round(acked_in_window / server_cpu, 1) if server_cpu else None,
            "rss_mb_before": round(rss_before / 2**20, 1),
            "rss_mb_after": round(rss_after / 2**20, 1),
            "connections_opened": self.opened,
            "client_in_flight_max": self.max_in_flight,
            "client_queue_max": self.max_pending,
            "connect_errors": self.connect_errors,
            "samples": samples,
        }


def server_cpu(key: str, pid: int) -> float:
    """CPU seconds of a watched process: the server's over its whole process tree (the
    connector with workers is a supervisor and worker processes), the others' alone."""
    return procstat.tree_cpu_seconds(pid) if key == "server" else procstat.cpu_seconds(pid)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {k: None for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean")}
    values = sorted(values)
    n = len(values)

    def at(q: float) -> float:
        return round(values[min(n - 1, int(q * n))] * 1000, 2)

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p95": at(0.95),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(values[-1] * 1000, 2),
        "mean": round(sum(values) / n * 1000, 2),
    }


def run(spec: Spec, workdir: Path, name: str) -> dict[str, Any]:
    """The generator on `spec` in a process of its own (files workdir/<name>.*); its result."""
    budget = spec.warmup + spec.duration + spec.drain_seconds + 120
    if spec.count:
        budget += spec.count / spec.rate * 1.5
    return run_module(["bench.loadgen"], asdict(spec), workdir, name, budget)


async def _main(spec: Spec) -> dict[str, Any]:
    return await Generator(spec).run()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.loadgen SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = Spec(**json.loads(Path(args[0]).read_text()))
    gc.disable()  # steadier timing; the generator allocates no cycles
    try:
        import uvloop

        result = uvloop.run(_main(spec))
    except ImportError:
        result = asyncio.run(_main(spec))
    result["spec"] = {k: v for k, v in asdict(spec).items() if k != "watch_pids"}
    Path(args[1]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
