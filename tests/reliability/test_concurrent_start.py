"""Replicas started at the same moment on subjects the registry has never seen all become ready.

Before: both set the new subject's compatibility at once, the registry answered the second
409 "A rule named 'COMPATIBILITY' already exists", and its start-up failed (a crash loop on a
first install or after a registry wipe).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from connector.devstack import Endpoints
from tests.live import free_port, serve_config
from tests.tools import REPO

pytestmark = pytest.mark.integration

REPLICAS = 3


def test_replicas_started_together_on_fresh_subjects_all_become_ready(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    fresh = uuid.uuid4().hex[:10]
    ports = [free_port() for _ in range(REPLICAS)]
    procs = []
    for i, port in enumerate(ports):
        path = serve_config(
            tmp_path / f"replica-{i}.yaml", endpoints, port, f"mms.test.start.{fresh}",
            dead_letters={"topic": f"mms.test.start.{fresh}.dlq"},
        )  # fmt: skip
        log = (tmp_path / f"replica-{i}.log").open("w")
        procs.append(
            subprocess.Popen(
                [str(REPO / ".venv" / "bin" / "mms-connector"), "serve", "--config", str(path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        deadline = time.monotonic() + 90
        ready: set[int] = set()
        while len(ready) < REPLICAS and time.monotonic() < deadline:
            for i, port in enumerate(ports):
                if procs[i].poll() is not None:
                    pytest.fail(
                        f"replica {i} exited {procs[i].returncode}:\n"
                        + (tmp_path / f"replica-{i}.log").read_text()[-3000:]
                    )
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        ready.add(i)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        assert len(ready) == REPLICAS, f"ready: {sorted(ready)} of {REPLICAS}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
