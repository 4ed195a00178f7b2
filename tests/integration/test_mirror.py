"""The mirror on the real broker, registry and S3 server, media served by a local HTTP server
standing in for Bandwidth's media host (basic auth required)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from connector.config import Config
from connector.devstack import Endpoints
from connector.mirror import Mirror
from tests.helpers import payload
from tests.live import Record, read_topic, running, s3_bucket, s3_media
from tests.media_host import GOOD_AUTH, JPEG, PASSWORD, PNG, media_fetch, mo_callback

pytestmark = pytest.mark.integration

PASSWORD_VAR = "MMS_TEST_MIRROR_MEDIA_PASSWORD"


@contextmanager
def mirroring(config: Config, env: dict[str, str]) -> Iterator[Mirror]:
    """The mirror run in-process on a thread of its own, as `mms-connector mirror` runs it."""
    mirror = Mirror(config, env)
    started = threading.Event()
    control: dict[str, Any] = {}

    async def main() -> None:
        control["loop"], control["stop"] = asyncio.get_running_loop(), asyncio.Event()
        started.set()
        await mirror.run(control["stop"])

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            control["error"] = exc
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)
    try:
        yield mirror
    finally:
        if "loop" in control:
            control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(60)
        assert not thread.is_alive(), "the mirror did not stop"
        assert "error" not in control, control.get("error")


def wait_for(endpoints: Endpoints, topic: str, count: int, timeout: float = 60) -> list[Record]:
    deadline = time.monotonic() + timeout
    while True:
        found = read_topic(endpoints, topic)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_mirrored_topic_holds_every_event_with_its_media_stored(
    make_config, endpoints, s3, topic, media_host, monkeypatch
) -> None:
    prefix = f"test-mirror/{uuid.uuid4().hex[:12]}/"
    s3_settings, s3_env = s3_media(s3, prefix)
    env = {PASSWORD_VAR: PASSWORD, **s3_env}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the app reads its secrets from the process
    mirrored_topic = f"{topic}.mirrored"
    config = make_config(
        {
            "bandwidth-v2": {
                "enabled": True,
                "topic": topic,
                "auth": {"unauthenticated": True},
                # Only the stand-in host, on loopback: the payloads' other hosts are never asked.
                "media_fetch": media_fetch(
                    PASSWORD_VAR,
                    retry_initial_seconds=0.2,
                    retry_max_seconds=1,
                    horizon_seconds=3,
                    timeout_seconds=2,  # /slow takes 3 s
                    max_bytes=4096,  # /big-declared is 5,000 bytes
                ),
            }
        },
        media={"store": "s3", "s3": s3_settings},
        mirror={"topic": mirrored_topic, "group_id": f"test-mirror-{uuid.uuid4().hex[:8]}"},
    )
    base = f"http://127.0.0.1:{media_host.port}"
    photo, gone, failing = f"{base}/photo.jpg", f"{base}/status/404", f"{base}/status/500"
    # The other failure cases, each through the whole path.
    cases = {
        "flaky": (f"{base}/flaky", "stored", None),  # 500, then the content
        "slow": (f"{base}/slow", "unavailable", "timeout"),  # retried until the horizon
        "big": (f"{base}/big-declared", "unavailable", "too_large"),
        "denied": (f"{base}/status/401", "unavailable", "http_401"),
        "metadata": (
            f"{base}/redirect?to=http://169.254.169.254/latest/meta-data/",
            "unavailable",
            "host_not_allowed",  # a redirect is re-checked: off the allowed hosts
        ),
    }
    urls = [photo, gone, failing] + [url for url, _, _ in cases.values()]
    with running(config) as app:
        mo = httpx.post(
            f"{app}/callbacks/bandwidth-v2", content=mo_callback("mirror-mo-1", urls), timeout=30
        )
        text_only = httpx.post(
            f"{app}/callbacks/bandwidth-v2", content=mo_callback("mirror-mo-2", []), timeout=30
        )
        statuses = httpx.post(
            f"{app}/callbacks/bandwidth-v2",
            content=payload("bandwidth_v2", "message_delivered_and_failed.json"),
            timeout=30,
        )
    for reply in (mo, text_only, statuses):
        assert reply.status_code == 200, reply.text
    source = read_topic(endpoints, topic)
    assert len(source) == 4

    with mirroring(config, env):
        mirrored = wait_for(endpoints, mirrored_topic, len(source))
    assert len(mirrored) == len(source)

    # Same keys and headers, each key's records in their order (keys go concurrently: the
    # text-only MO of the same owner waits for the MO's media, retried for 3 s).
    def by_key(found: list[Record]) -> dict[str, list[tuple[dict[str, str], Any]]]:
        out: dict[str, list[tuple[dict[str, str], Any]]] = {}
        for r in found:
            out.setdefault(r.key, []).append((r.headers, r.value["event_id"]))
        return out

    assert by_key(mirrored) == by_key(source)
    after = {r.value["event_id"]: r for r in mirrored}
    mo_id = source[0].value["event_id"]
    # Nothing to mirror: passed through unchanged.
    assert after[source[1].value["event_id"]].value == source[1].value
    # Media on hosts outside allowed_hosts: refused without a lookup, given up at once.
    elsewhere = [e for r in source[2:] for e in after[r.value["event_id"]].value["media"]]
    assert elsewhere
    assert {(e["status"], e["reason"]) for e in elsewhere} == {("unavailable", "host_not_allowed")}

    stored, unavailable_404, unavailable_500, *others = after[mo_id].value["media"]
    assert [(e["source_uri"] or e["uri"], e["status"], e["reason"]) for e in others] == list(
        cases.values()
    )
    flaky = others[0]
    assert (flaky["content_type"], flaky["sha256"]) == (
        "image/png",
        hashlib.sha256(PNG).hexdigest(),
    )
    key = f"{prefix}{hashlib.sha256(JPEG).hexdigest()[:2]}/{hashlib.sha256(JPEG).hexdigest()}"
    assert stored == {
        "uri": f"s3://{s3.s3_bucket}/{key}",
        "source_uri": photo,
        "url": None,
        "content_type": "image/jpeg",  # the host said text/plain; the bytes say JPEG
        "size": len(JPEG),
        "sha256": hashlib.sha256(JPEG).hexdigest(),
        "filename": "photo.jpg",
        "status": "stored",
        "reason": None,
    }
    bucket = s3_bucket(s3)
    assert bytes(bucket.get(key).bytes()) == JPEG
    # The media host saw our credentials on its own URLs.
    assert {auth for path, _, auth in media_host.seen if path == "/photo.jpg"} == {GOOD_AUTH}

    # 404 is final: given up at once; 500 retried until the 3 s horizon, then given up.
    assert (unavailable_404["status"], unavailable_404["reason"]) == ("unavailable", "http_404")
    assert (unavailable_404["uri"], unavailable_404["sha256"]) == (gone, None)
    assert (unavailable_500["status"], unavailable_500["reason"]) == ("unavailable", "http_500")
    assert len([p for p, _, _ in media_host.seen if p == "/status/500"]) >= 3
