"""How uvicorn serves the app: one place, so `serve`, `dev` and the tests run it alike."""

from __future__ import annotations

import ctypes
import gc
import logging
from typing import cast

import uvicorn

from connector.app import create_app
from connector.config import Config
from connector.http_limits import HttpLimits, protocol_class


def uvicorn_config(config: Config, host: str, port: int) -> uvicorn.Config:
    # Never uvicorn's access log: a path can carry a provider's token. The app logs one line
    # per callback itself, without the path. (access_log=False alone is undone when logging is
    # reconfigured later in the process.)
    logging.getLogger("uvicorn.access").disabled = True
    server = config.server
    limits = HttpLimits(
        max_header_bytes=server.max_header_bytes,
        max_header_count=server.max_header_count,
        header_read_timeout=server.header_read_timeout_seconds,
        max_connections=server.max_connections,
    )
    return uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        # httptools with bounded request heads, a head read timeout and a connection cap
        # (uvicorn's limit_concurrency refuses only once a head is read, in plain text).
        http=protocol_class(limits),
        # The app serves no WebSocket: upgrade requests are plain HTTP requests to it.
        ws="none",
        timeout_keep_alive=_seconds(server.keep_alive_timeout_seconds),
        log_config=None,  # keep our JSON logging
        access_log=False,  # one line per callback is logged by the app itself
        # uvicorn would otherwise take the client address from X-Forwarded-For whenever the peer
        # is 127.0.0.1 (or in FORWARDED_ALLOW_IPS), e.g. every request through a mesh sidecar,
        # bypassing the allowlist; only auth.trusted_proxies may make X-Forwarded-For count.
        proxy_headers=False,
        # Graceful shutdown: on SIGTERM stop accepting, wait this long for in-flight requests;
        # the app's lifespan then flushes the producer.
        timeout_graceful_shutdown=_seconds(config.kafka.flush_timeout_seconds),
    )


def _seconds(value: float) -> int:
    """A timeout for uvicorn.Config, fraction kept: uvicorn annotates these int but only hands
    them to loop.call_later and asyncio.wait_for, which take float seconds. Rounding would
    change the setting (a 0.5 s keep-alive, as tests/reliability/test_http_limits.py uses,
    would become 0 or 1 s)."""
    return cast(int, value)


def tune_memory() -> None:
    """What `serve` applies before serving: `tune_gc` and `tune_malloc`."""
    tune_gc()
    tune_malloc()


def tune_gc() -> None:
    """Collect garbage rarely, and never look at start-up objects again.

    With CPython's default thresholds the collector ran ~30 times a second under load, and
    its full passes paused the event loop for up to 95 ms: 4 % of the CPU and most of the p99
    (bench/results/2026-11-25-gc.md). Per-request objects are freed by reference counting;
    the collector only has the rare reference cycle to find, so a large first threshold
    costs a bounded amount of memory.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(size: int = 1 << 20, keep: int = 64 << 20, arenas: int = 2) -> None:
    """Blocks over 1 MiB from mmap, always (glibc otherwise raises the threshold after each free);
    freed memory kept for reuse up to 64 MiB; two malloc arenas, not eight per core.

    The dedupe window's tables are megabytes and are reallocated as ids come and go; with the
    moving threshold they land on the heap, where each reallocation left a hole: RSS rose in
    steps (+16 % over a 1 M-callback soak, flat with the threshold fixed). Fixing it also fixes
    the trim threshold at 128 KiB, so each arena gave back the top of its heap after every
    multipart body (hundreds of KB) and faulted it in again for the next: page faults were 7 %
    of a multipart callback's CPU (perf), and with the translate threads' own arenas, CPU per
    multipart callback fell from 2.70 to 2.16 ms with 64 MiB kept and two arenas (best of five
    rounds each, bench/results/2026-12-02-speed.md). The GIL serialises the allocations those
    threads make anyway.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl, macOS): their allocators do not move a threshold
    mallopt(_M_MMAP_THRESHOLD, size)
    mallopt(_M_TRIM_THRESHOLD, keep)
    mallopt(_M_ARENA_MAX, arenas)
