"""`serve` with `server.workers` > 1: worker processes sharing one listening socket.

One event loop uses one core; a pod with N cores runs N workers. The supervisor binds the port
once and starts each worker as `mms-connector serve --worker-socket-fd FD` with the socket
inherited: the kernel spreads connections over the workers that accept on it. Each worker is
a whole connector (its own producer, its own window; across workers only the shared window,
`dedupe.shared`, suppresses repeats). Metrics: every worker writes its samples under
PROMETHEUS_MULTIPROC_DIR and any worker's /metrics answers for all of them (prometheus_client's
multiprocess mode, set before a worker imports it). SIGTERM and SIGINT are passed to every
worker, which drains as a single process does; the supervisor exits once they all have, 0 if
each did. A worker that dies otherwise is started again after a second.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

log = logging.getLogger("connector.workers")

RESTART_DELAY_SECONDS = 1.0
MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def supervise(config_path: Path, host: str, port: int, workers: int) -> int:
    """Run `workers` workers on host:port until SIGTERM/SIGINT; their combined exit status."""
    sock = listening_socket(host, port)
    metrics_dir = Path(tempfile.mkdtemp(prefix="mms-metrics-"))
    env = {**os.environ, MULTIPROC_VAR: str(metrics_dir)}
    cmd = [sys.executable, "-m", "connector.cli", "serve", "--config", str(config_path)]
    cmd += ["--worker-socket-fd", str(sock.fileno())]
    stopping = False

    def start(index: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, env=env, pass_fds=(sock.fileno(),))
        log.info("worker %d started: pid %d", index, proc.pid)
        return proc

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    procs = [start(i) for i in range(workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("%d workers on %s:%d", workers, host, port)
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.poll() is not None and not stopping:
                    log.error(
                        "worker %d (pid %d) exited %d: restarting", i, proc.pid, proc.returncode
                    )
                    _forget(metrics_dir, proc.pid)
                    time.sleep(RESTART_DELAY_SECONDS)
                    procs[i] = start(i)
        codes = [proc.wait() for proc in procs]
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("workers stopped: exit statuses %s", codes)
    return 0 if all(code == 0 for code in codes) else 1


def _forget(metrics_dir: Path, pid: int) -> None:
    """A dead worker's live gauges (in flight, window size) stop counting."""
    # prometheus_client's multiprocess module carries no annotations.
    multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]


def inherited_socket(fd: int) -> socket.socket:
    """The supervisor's listening socket, in a worker."""
    return socket.socket(fileno=fd)
