"""translate + encode CPU per callback, in process (the pure part of the callback path).

    python -m bench.translate_cpu REPO

REPO is the tree whose tests/payloads are read. To compare two trees on one venv, put the tree
to measure first on PYTHONPATH (results: bench/results/2026-12-02-refactor.md).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import payloads as bench_payloads
from connector import pipeline
from connector.config import Config
from connector.media import DeferredPuts, FilesystemMediaStore

try:
    from connector.providers.contract import Callback
except ImportError:  # a tree before bd929e3 (the contract was connector/callback.py)
    from connector.callback import Callback  # type: ignore[no-redef]

CASES = [
    ("bandwidth-v2", "bandwidth_v2/message_received_mms.json", "application/json"),
    ("bandwidth-v1", "bandwidth_v1/inbound_mms.json", "application/json"),
    ("sinch", "sinch/mms_mo.xml", "application/xml"),
    ("openmarket", "openmarket/report_delivered.json", "application/json"),
    ("openmarket", "openmarket/mo_several_images.eml", 'multipart/mixed; boundary="b1"'),
]
CALLS, ROUNDS = 2000, 5


def main(repo: Path) -> None:
    payloads = repo / "tests" / "payloads"
    providers = {name: {"enabled": True, "default_country": "US"} for name, _, _ in CASES}
    config = Config.model_validate({"media": {"root": tempfile.mkdtemp()}, "providers": providers})
    routes = {r.name: r for r in pipeline.routes(config, env={})}
    for name, file, content_type in CASES:
        body = (payloads / file).read_bytes()
        callback = Callback(body, {"content-type": content_type}, datetime.now(UTC), content_type)
        best = _best(routes[name], [callback], CALLS, deferred=False)
        print(f"{name:13s} {file.split('/')[1]:32s} {best:7.1f} us")
    # The load generator's MOs (bench/payloads.py: 20-300 KB images, ~276 KB bodies), with
    # the parts named but not written, as the endpoint does on the event loop (DeferredPuts):
    # the translation's share of a multipart callback at saturation.
    mos = [
        Callback(t.body(b"%016d" % i), {"content-type": t.content_type}, datetime.now(UTC),
                 t.content_type)
        for i, (t, _) in enumerate(bench_payloads.openmarket_mo())
    ]  # fmt: skip
    best = _best(routes["openmarket"], mos, CALLS // 20, deferred=True)
    print(f"{'openmarket':13s} {'bench MOs (bench/payloads.py)':32s} {best:7.1f} us")


def _best(route: pipeline.Route, callbacks: list[Callback], calls: int, deferred: bool) -> float:
    """The best round's CPU per callback (us), `calls` of each of `callbacks` per round."""

    def once(callback: Callback) -> None:
        if deferred:
            assert isinstance(route.store, FilesystemMediaStore)
            pipeline.translate(route, callback, DeferredPuts(route.store))
        else:
            pipeline.translate(route, callback)

    for callback in callbacks[:1] * 200:  # warm up
        once(callback)
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            for callback in callbacks:
                once(callback)
        best = min(best, (time.process_time() - started) / (calls * len(callbacks)) * 1e6)
    return best


if __name__ == "__main__":
    main(Path(sys.argv[1]))
