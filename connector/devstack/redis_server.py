"""Redis, the devstack's shared duplicate window: its server, configuration and a PING.

The server is Debian's `redis-server` package (Redis 7.0 on bookworm), installed with apt-get
when it is missing and we run as root. The package starts a system service of its own on
install (port 6379, /etc/redis); that one is never used or touched: the stack runs its own
process with its own config on a free loopback port, its files under the stack home.

Named redis_server, not redis, so it is never mistaken for redis-py, the connector's client.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from pathlib import Path

from connector.devstack.fetching import file_lock

log = logging.getLogger("connector.devstack")

# A fixed, public, local-only password: the server listens on loopback only and holds a
# duplicate window of test data. Printed by `devstack status` on purpose (in REDIS_URL);
# never use it anywhere else. URL-safe, so it goes into redis:// URLs as is.
PASSWORD = "local-redis-password"
DB = 0
PACKAGE = "redis-server"
BINARY = "redis-server"
INSTALL = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE]
UPDATE = ["apt-get", "update", "-qq"]
APT_TIMEOUT_S = 600


def url(host: str, port: int, password: str = PASSWORD) -> str:
    return f"redis://:{password}@{host}:{port}/{DB}"


def render_config(host: str, port: int, data_dir: Path, logfile: Path) -> str:
    """redis.conf for the stack's own server: loopback, password, an append-only file."""
    settings = [
        ("bind", host),
        ("port", str(port)),
        ("protected-mode", "yes"),
        ("requirepass", PASSWORD),
        # The window outlives a restart of its server, as a production Valkey's must: one that
        # came back empty would let every replica produce again what another one published.
        # An append-only file synced each second; no snapshots.
        ("save", '""'),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("dir", str(data_dir)),
        ("daemonize", "no"),
        ("supervised", "no"),
        ("logfile", str(logfile)),
        # Keep argv as launched: the stack tells its process from a recycled pid by the config
        # path on its command line (stack._running), which Redis would otherwise overwrite.
        ("set-proc-title", "no"),
        ("always-show-logo", "no"),
    ]
    return "".join(f"{key} {value}\n" for key, value in settings)


def _apt_get(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
    )


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((done.stdout + done.stderr).splitlines()[-20:])


def _install() -> None:
    """apt-get install redis-server; if that fails, apt-get update and try once more."""
    log.info("installing %s with apt-get (Debian's package)", PACKAGE)
    done = _apt_get(INSTALL)
    if done.returncode != 0:
        log.info("apt-get install failed (%d); updating the package lists", done.returncode)
        updated = _apt_get(UPDATE)
        if updated.returncode != 0:
            raise RuntimeError(f"apt-get update failed ({updated.returncode}):\n{_tail(updated)}")
        done = _apt_get(INSTALL)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get install {PACKAGE} failed ({done.returncode}):\n{_tail(done)}")


def find_server(lock_dir: Path) -> Path:
    """The redis-server binary on PATH, installing Debian's package first if root can.

    `lock_dir` (the shared cache) holds the lock that keeps concurrent stacks from running
    apt-get at once.
    """
    if found := shutil.which(BINARY):
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"the devstack's Redis needs `{BINARY}` on PATH and it is not there. Install it, "
            f"e.g. `sudo apt-get install {PACKAGE}` (Debian/Ubuntu), `sudo dnf install redis`, "
            "or `brew install redis` (macOS); as root with apt-get the devstack installs it itself."
        )
    with file_lock(lock_dir / ".redis-install.lock"):
        # Another stack may have installed it while this one waited for the lock.
        if not shutil.which(BINARY):
            _install()
    if found := shutil.which(BINARY):
        return Path(found)
    raise RuntimeError(f"apt-get installed {PACKAGE}, yet `{BINARY}` is not on PATH")


def _command(*args: str) -> bytes:
    """One command in RESP, the protocol's array of bulk strings."""
    encoded = [arg.encode() for arg in args]
    return b"*%d\r\n" % len(encoded) + b"".join(
        b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in encoded
    )


def _replies(sock: socket.socket, count: int) -> list[bytes]:
    """The first `count` reply lines (simple strings and errors are one line each)."""
    buffer = b""
    while buffer.count(b"\r\n") < count:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\r\n")[:count]


def answers(host: str, port: int, password: str | None = PASSWORD, timeout: float = 2.0) -> bool:
    """True once the server answers PING with PONG (after AUTH when `password` is given)."""
    commands = ([_command("AUTH", password)] if password is not None else []) + [_command("PING")]
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"".join(commands))
            replies = _replies(sock, len(commands))
    except OSError:  # refused, reset, timed out
        return False
    # While it loads a dataset Redis answers -LOADING; a wrong password gets -WRONGPASS.
    return replies[-1:] == [b"+PONG"] and all(reply.startswith(b"+") for reply in replies)
