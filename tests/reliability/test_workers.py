"""`server.workers: 2`: two processes serve one port, /metrics counts for both, the shared
window suppresses a repeat that reaches the other worker, SIGTERM stops them all cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from connector.devstack import Endpoints
from tests.live import free_port, read_topic, serve_config, shared_window
from tests.reliability.conftest import (
    bandwidth_callback,
    bandwidth_event_ids,
    metric,
    serve,
    wait_ready,
)

pytestmark = pytest.mark.integration

CALLBACKS = 200
PASSWORD_VAR = "MMS_TEST_WORKERS_REDIS_PASSWORD"


def test_two_workers_serve_one_port_as_one_connector(
    endpoints: Endpoints, redis_url: str, tmp_path: Path
) -> None:
    topic = f"mms.test.workers.{uuid.uuid4().hex[:8]}"
    port = free_port()
    shared, env = shared_window(redis_url, PASSWORD_VAR)
    path = serve_config(
        tmp_path / "workers.yaml", endpoints, port, topic,
        server={"workers": 2}, dedupe={"shared": shared},
    )  # fmt: skip
    log = tmp_path / "serve.log"
    proc = serve(path, log, env)
    base = f"http://127.0.0.1:{port}"
    run = uuid.uuid4().hex[:8]
    bodies = [bandwidth_callback(f"{run}-{i}") for i in range(CALLBACKS)]
    try:
        wait_ready(base, proc, log)

        async def send() -> list[int]:
            # A connection each: the kernel hands new connections to either worker.
            async def one(body: bytes) -> int:
                async with httpx.AsyncClient(timeout=30) as client:
                    return (
                        await client.post(f"{base}/callbacks/bandwidth-v2", content=body)
                    ).status_code

            first = await asyncio.gather(*(one(b) for b in bodies))
            repeats = await asyncio.gather(*(one(b) for b in bodies[:50]))
            return [*first, *repeats]

        statuses = asyncio.run(send())
        text = httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(90)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert statuses == [200] * (CALLBACKS + 50)
    pids = set(re.findall(r"Started server process \[(\d+)\]", output))
    assert len(pids) == 2, output[-2000:]
    # Any worker's /metrics answers for both: every callback counted once.
    labels = {"provider": "bandwidth-v2"}
    assert metric(text, "mms_callbacks_total", outcome="published", **labels) == CALLBACKS
    assert metric(text, "mms_callbacks_total", outcome="duplicate", **labels) == 50
    produced = [r.value["event_id"] for r in read_topic(endpoints, topic)]
    assert sorted(produced) == sorted(e for b in bodies for e in bandwidth_event_ids(b))
    assert "workers stopped: exit statuses [0, 0]" in output
