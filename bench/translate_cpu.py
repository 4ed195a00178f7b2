"""translate + encode CPU per callback, in process (the pure part of the callback path).

    python bench/translate_cpu.py REPO

REPO is the tree whose tests/payloads are read. To compare two trees on one venv, put the tree
to measure first on PYTHONPATH (results: bench/results/2026-12-02-refactor.md).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from connector import pipeline
from connector.config import Config

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
        route = routes[name]
        for _ in range(200):  # warm up
            pipeline.translate(route, callback)
        best = float("inf")
        for _ in range(ROUNDS):
            started = time.process_time()
            for _ in range(CALLS):
                pipeline.translate(route, callback)
            best = min(best, (time.process_time() - started) / CALLS * 1e6)
        print(f"{name:13s} {file.split('/')[1]:32s} {best:7.1f} us")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
