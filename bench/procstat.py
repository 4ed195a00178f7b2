"""CPU seconds and RSS of a process (and its threads) from /proc, plus the load average; for a
server of several processes (the connector with `server.workers` > 1: a supervisor and its
workers), the same over its whole process tree (`tree_cpu_seconds`, `tree_rss_bytes`...)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """The process's name and the fields of /proc/<pid>/stat after it; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, theirs...), parents before their children.

    From each process's parent in /proc/*/stat: /proc/<pid>/task/*/children needs
    CONFIG_PROC_CHILDREN, which this box's kernel lacks.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            _name, fields = stat
            children.setdefault(int(fields[1]), []).append(int(entry.name))  # ppid
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo += children.get(child, [])
    return out


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    return [pid, *descendants(pid)]


def process_cpu_seconds(pid: int, pids: list[int] | None = None) -> dict[int, tuple[str, float]]:
    """Per process of the tree (`pids`: `tree(pid)` already read), its name and its user +
    system CPU with that of the children it has reaped (cutime, cstime): a worker that ended
    and was waited for still counts, in its parent, and no process is counted twice."""
    out: dict[int, tuple[str, float]] = {}
    for p in tree(pid) if pids is None else pids:
        if (stat := _stat(p)) is not None:
            name, fields = stat
            out[p] = (name, sum(int(v) for v in fields[11:15]) / TICKS)  # u, s, cu, cs time
    return out


def tree_cpu_seconds(pid: int, pids: list[int] | None = None) -> float:
    """User + system CPU of the process and every process below it, threads included (for a
    process without children, `cpu_seconds`)."""
    return sum(cpu for _name, cpu in process_cpu_seconds(pid, pids).values())


def tree_thread_cpu_seconds(pid: int) -> dict[str, float]:
    """`thread_cpu_seconds` over the process tree, summed by thread name across processes."""
    out: dict[str, float] = {}
    for p in tree(pid):
        for name, cpu in thread_cpu_seconds(p).items():
            out[name] = out.get(name, 0.0) + cpu
    return out


def tree_rss_bytes(pid: int, pids: list[int] | None = None) -> int:
    """The RSS of every process of the tree, summed (the pages they share counted in each)."""
    return sum(rss_bytes(p) for p in (tree(pid) if pids is None else pids))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU of the process's live threads, summed by thread name (e.g. rdk:broker1, python)."""
    out: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the process ended meanwhile
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


def rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process ended meanwhile
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
