"""The processes a benchmark starts: servers it waits for and always stops, and helpers that
run as processes of their own (so their CPU is not the driver's) with a JSON spec in and a JSON
result out."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.paths import PY, REPO


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


def run_module(
    module: list[str], spec: dict[str, Any], workdir: Path, name: str, timeout: float
) -> dict[str, Any]:
    """`python -m <module...> SPEC.json OUT.json` to the end; what it wrote to OUT.json."""
    spec_file, out_file = workdir / f"{name}.spec.json", workdir / f"{name}.out.json"
    spec_file.write_text(json.dumps(spec))
    subprocess.run(
        [PY, "-m", *module, str(spec_file), str(out_file)], cwd=REPO, check=True, timeout=timeout
    )
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


def log_summary(log: Path, keep: int = 10) -> tuple[dict[str, int], list[str]]:
    """Log lines by level (the connector logs JSON lines), and the first `keep` distinct
    messages of its warning, error and critical lines: what it said went wrong, kept before
    the log is dropped (big)."""
    counts: dict[str, int] = {}
    said: dict[str, None] = {}
    if not log.exists():
        return counts, []
    with log.open("rb") as f:
        for line in f:
            level, message = "other", ""
            if line.startswith(b"{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    level, message = record.get("level", "other"), str(record.get("message"))
            counts[level] = counts.get(level, 0) + 1
            if level in ("warning", "error", "critical") and len(said) < keep:
                said.setdefault(f"{level}: {message[:300]}")
    return counts, list(said)
