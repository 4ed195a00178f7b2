"""py-spy on the connector (`--profile`): recording its GIL-holding stacks while a closed-loop
run drives it, and the frames that took the most samples, from py-spy's collapsed stacks."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.paths import REPO, VENV_BIN

PY_SPY = VENV_BIN / "py-spy"
UNAVAILABLE = "py-spy is not installed in the venv (pip install py-spy)"


@contextlib.contextmanager
def recording(pid: int, seconds: float, raw: Path, subprocesses: bool = False) -> Iterator[None]:
    """py-spy records `pid` (and, if `subprocesses`, its child processes: a connector's
    workers) for `seconds` (200 Hz, GIL-holding samples) into `raw` while the block runs; waits
    for it to finish writing at the end."""
    spy = subprocess.Popen(
        [
            str(PY_SPY),
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
            *(["--subprocesses"] if subprocesses else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        spy.wait(120)


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
