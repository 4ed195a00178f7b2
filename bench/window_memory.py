"""RSS of the translate + dedupe-window path in one process, no services: a 2-minute stand-in
for the 1 M-callback soak when the question is memory, not latency.

    .venv/bin/python -m bench.window_memory --callbacks 900000 --window 100000
    .venv/bin/python -m bench.window_memory --glibc-default   # without the fixed mmap threshold

Found with it: glibc's moving mmap threshold let the window's multi-megabyte tables land on
the heap, where every reallocation left a hole (RSS +11 MB in steps at ~600 k and ~800 k
callbacks); `connector.server.tune_memory` fixes the threshold (results/2026-11-25-soak-*.md).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import payloads
from connector import pipeline, server
from connector.config import Config
from connector.dedupe import Window
from connector.providers.contract import Callback


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.window_memory", description=__doc__)
    p.add_argument("--callbacks", type=int, default=900_000)
    p.add_argument("--window", type=int, default=100_000, help="dedupe.max_entries")
    p.add_argument("--every", type=int, default=50_000, help="RSS sample interval (callbacks)")
    p.add_argument("--warmup", type=int, default=200_000, help="callbacks before RSS counts")
    p.add_argument("--glibc-default", action="store_true", help="GC tuning only, no mallopt")
    a = p.parse_args(argv)

    provider = "bandwidth-v2"  # the json mix's
    config = Config.model_validate({"providers": {provider: payloads.provider_settings(provider)}})
    (route,) = pipeline.routes(config)
    window = Window(3600, a.window)
    templates = payloads.mix("json")
    order = payloads.sequence(templates)
    tokens = payloads.tokens("w")
    server.tune_gc()
    if not a.glibc_default:
        server.tune_malloc()
    samples: list[tuple[int, float]] = []
    started = time.perf_counter()
    for i in range(a.callbacks + 1):
        if i % a.every == 0:
            samples.append((i, rss_mb()))
            print(f"{i:>9} callbacks  RSS {samples[-1][1]:.1f} MB", flush=True)
        template = templates[order[i % len(order)]][0]
        body = template.body(next(tokens))
        callback = Callback(body, {}, datetime.now(UTC), template.content_type)
        for out in pipeline.translate(route, callback):
            if not window.seen(out.event.event_id):
                window.add(out.event.event_id)
    after_warmup = next(mb for i, mb in samples if i >= a.warmup)
    end = samples[-1][1]
    print(
        f"RSS after {a.warmup} callbacks {after_warmup:.1f} MB, at the end {end:.1f} MB "
        f"({(end / after_warmup - 1) * 100:+.1f} %), window {len(window)} ids, "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
