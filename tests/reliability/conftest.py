"""Fixtures for reliability tests: traffic shapes, metrics, a broker of their own to stop."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import orjson
import pytest

from connector.devstack import Endpoints
from connector.providers import bandwidth_v2
from connector.providers.contract import Options, TranslateContext
from tests.helpers import callback, payload


def bandwidth_callback(message_id: str, event_type: str = "message-sending") -> bytes:
    """A Bandwidth v2 callback (one event) unique by its message id."""
    event = orjson.loads(payload("bandwidth_v2", "message_sending.json"))[0]
    event["type"] = event_type
    event["message"]["id"] = message_id
    return orjson.dumps([event])


def bandwidth_event_ids(body: bytes) -> list[str]:
    """What the connector must answer for this body, computed without it."""
    return [e.event_id for e in bandwidth_v2.translate(callback(body), TranslateContext(Options()))]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in /metrics text (0 when absent)."""
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return 0.0


@pytest.fixture(scope="module")
def dedicated_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Endpoints]]:
    """A Kafka + registry + S3Proxy of this module's own: stopping one disturbs no other test."""
    from connector import devstack

    if not (shutil.which("java") and shutil.which("mvn")):
        pytest.skip("a dedicated stack needs Java and Maven")
    home = tmp_path_factory.mktemp("dedicated-stack")
    try:
        yield home, devstack.up(home)
    finally:
        devstack.down(home)


def serve(config: Path, log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`mms-connector serve` in a process of its own (its output in `log`); the caller stops it."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"serve not ready:\n{log.read_text()[-3000:]}")
