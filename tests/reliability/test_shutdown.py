"""`mms-connector serve` as it runs in production: SIGTERM stops accepting, lets the callback in
flight finish (published, answered 2xx), flushes the producer and exits 0."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from connector.devstack import Endpoints
from tests.helpers import payload
from tests.live import free_port, read_topic
from tests.reliability.conftest import bandwidth_callback, bandwidth_event_ids, serve, wait_ready

pytestmark = pytest.mark.integration

TOKEN = "tok-" + uuid.uuid4().hex


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_the_callback_in_flight_and_exits_0(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    topic = f"mms.test.{uuid.uuid4().hex[:12]}"
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": endpoints.bootstrap_servers},
                "schema_registry": {"url": endpoints.registry_url},
                "server": {"host": "127.0.0.1", "port": port},
                "media": {"root": str(tmp_path / "media")},
                "dead_letters": {"topic": f"mms.test.dlq.{uuid.uuid4().hex[:12]}"},
                "providers": {
                    "bandwidth-v2": {
                        "enabled": True,
                        "topic": topic,
                        "auth": {
                            "token": {
                                "header": "X-Token",
                                "value": {"env": "MMS_TEST_SHUTDOWN_TOKEN"},
                            }
                        },
                    },
                    "bandwidth-v1": {
                        "enabled": True,
                        "topic": topic,
                        "auth": {"allow_cidrs": ["203.0.113.0/24"]},
                    },
                },
            }
        )
    )
    log = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    body = bandwidth_callback(f"shutdown-{uuid.uuid4().hex[:10]}")
    half = len(body) // 2

    proc = serve(config, log, {"MMS_TEST_SHUTDOWN_TOKEN": TOKEN})
    try:
        wait_ready(base, proc, log)

        # The real server believes no X-Forwarded-For from its loopback peer (no trusted proxy).
        spoofed = httpx.post(
            f"{base}/callbacks/bandwidth-v1",
            content=payload("bandwidth_v1", "inbound_mms.json"),
            headers={"X-Forwarded-For": "203.0.113.9"},
            timeout=10,
        )
        assert spoofed.status_code == 403, spoofed.text
        wrong = httpx.post(
            f"{base}/callbacks/bandwidth-v2", content=body, headers={"X-Token": "nope"}, timeout=10
        )
        assert wrong.status_code == 401

        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                f"POST /callbacks/bandwidth-v2 HTTP/1.1\r\nHost: x\r\nX-Token: {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body[:half]
            )
            time.sleep(0.5)  # the callback is in the app, waiting for the rest of its body
            proc.send_signal(signal.SIGTERM)

            deadline = time.monotonic() + 10
            while not refuses_connections(port):
                assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
                time.sleep(0.1)
            assert proc.poll() is None, "exited with a callback in flight"

            sock.sendall(body[half:])
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk

        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    head, _, content = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:500]
    assert b"connection: close" in head.lower()
    assert orjson.loads(content)["event_ids"] == bandwidth_event_ids(body)
    assert [r.value["event_id"] for r in read_topic(endpoints, topic)] == bandwidth_event_ids(body)

    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    outcomes = [line["outcome"] for line in lines if "outcome" in line]
    assert outcomes == ["unauthorized", "unauthorized", "published"]
    assert not any("not flushed" in line["message"] for line in lines)
    assert TOKEN not in log.read_text()
