"""OpenMarket inline media into the real S3 server, on the real app, broker and registry."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
from obstore.store import S3Store

from connector import cli
from connector.config import Config
from connector.devstack import Endpoints
from tests.helpers import payload
from tests.live import Record, running, s3_bucket, s3_media

pytestmark = pytest.mark.integration

MO = "mo_several_images.eml"
MO_CT = 'multipart/mixed; boundary="b1"'


@pytest.fixture
def prefix() -> str:
    # Tests share one bucket and isolate by key prefix.
    return f"test-media-s3/{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def s3_settings(s3: Endpoints, prefix: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The `media.s3` block for the tests' server; its keys as secrets in the environment."""
    settings, env = s3_media(s3, prefix)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture
def config(make_config, topic: str, s3_settings: dict[str, Any]) -> Config:
    return make_config(
        {"openmarket": {"enabled": True, "topic": topic, "auth": {"unauthenticated": True}}},
        media={"store": "s3", "s3": s3_settings},
    )


@pytest.fixture
def bucket(s3: Endpoints) -> S3Store:
    return s3_bucket(s3)


def _post(base: str) -> httpx.Response:
    body = payload("openmarket", MO)
    return httpx.post(
        f"{base}/callbacks/openmarket", content=body, headers={"Content-Type": MO_CT}, timeout=30
    )


def _key(uri: str, s3: Endpoints) -> str:
    head = f"s3://{s3.s3_bucket}/"
    assert uri.startswith(head), uri
    return uri.removeprefix(head)


def _one(records: list[Record]) -> dict[str, Any]:
    assert len(records) == 1, records
    return records[0].value


def test_mo_parts_are_objects_whose_bytes_match_the_record(
    config: Config, records, topic: str, s3: Endpoints, prefix: str, bucket: S3Store
) -> None:
    with running(config) as base:
        reply = _post(base)
    assert (reply.status_code, reply.content) == (200, b"")
    media = _one(records(topic))["media"]
    assert len(media) == 4  # the SMIL, two JPEGs, the PNG
    for entry in media:
        key = _key(entry["uri"], s3)
        assert key == f"{prefix}{entry['sha256'][:2]}/{entry['sha256']}"
        got = obstore.get(bucket, key)
        content = bytes(got.bytes())
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        assert len(content) == entry["size"]
        assert got.attributes["Content-Type"] == entry["content_type"]
        assert entry["status"] == "stored"


def test_media_get_returns_the_object(
    config: Config,
    records,
    topic: str,
    tmp_path: Path,
    capfdbinary,
    s3: Endpoints,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running(config) as base:
        assert _post(base).status_code == 200
    png = next(m for m in _one(records(topic))["media"] if m["content_type"] == "image/png")
    config_file = tmp_path / "connector.yaml"
    config_file.write_text(config.model_dump_json())  # JSON is YAML

    out = tmp_path / "map.png"
    assert cli.main(["media", "get", png["uri"], "--config", str(config_file), "-o", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == png["sha256"]
    capfdbinary.readouterr()
    assert cli.main(["media", "get", png["uri"], "--config", str(config_file)]) == 0
    assert hashlib.sha256(capfdbinary.readouterr().out).hexdigest() == png["sha256"]
    # Without --config: the URI's bucket, MMS_S3_ENDPOINT_URL and the default credential chain.
    monkeypatch.setenv("MMS_S3_ENDPOINT_URL", s3.s3_endpoint_url or "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.s3_access_key_id or "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.s3_secret_access_key or "")
    assert cli.main(["media", "get", png["uri"], "-o", str(out)]) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == png["sha256"]
    # Only its own store: another bucket's URI is refused, not fetched.
    other = png["uri"].replace(f"s3://{s3.s3_bucket}/", "s3://another-bucket/")
    assert cli.main(["media", "get", other, "--config", str(config_file)]) == 1


def test_a_retried_mo_does_not_upload_its_parts_again(
    config: Config, records, topic: str, s3: Endpoints, bucket: S3Store
) -> None:
    with running(config) as base:
        assert _post(base).status_code == 200
        keys = [_key(m["uri"], s3) for m in _one(records(topic))["media"]]
        # Mark each object (same bytes, another Content-Type): a second upload would undo it.
        for key in keys:
            content = bytes(obstore.get(bucket, key).bytes())
            obstore.put(bucket, key, content, attributes={"Content-Type": "x-test/marker"})
        assert _post(base).status_code == 200
    for key in keys:
        assert obstore.get(bucket, key).attributes["Content-Type"] == "x-test/marker"
    assert len(records(topic)) == 1  # the retry is a duplicate, not produced again


def test_s3_stopped_is_a_503_then_ok_once_it_is_back(
    config: Config, records, topic: str, s3: Endpoints, stack_home: Path, bucket: S3Store
) -> None:
    from connector import devstack

    local = devstack.status(stack_home)
    if local is None or local.s3_endpoint_url != s3.s3_endpoint_url:
        pytest.skip("S3 is not the local stack's S3Proxy: it cannot be stopped from here")
    with running(config) as base:
        devstack.stop_s3(stack_home)
        try:
            down = _post(base)
        finally:
            devstack.start_s3(stack_home)
        back = _post(base)
    assert down.status_code == 503
    assert down.json()["error"] == "media_store_failed"
    assert down.headers["retry-after"]
    assert (back.status_code, back.content) == (200, b"")
    media = _one(records(topic))["media"]
    for entry in media:
        content = bytes(obstore.get(bucket, _key(entry["uri"], s3)).bytes())
        assert hashlib.sha256(content).hexdigest() == entry["sha256"]


def test_a_presigned_url_in_the_record_fetches_the_part(
    make_config, records, topic: str, s3_settings: dict[str, Any]
) -> None:
    config = make_config(
        {"openmarket": {"enabled": True, "topic": topic, "auth": {"unauthenticated": True}}},
        media={"store": "s3", "s3": {**s3_settings, "presign_seconds": 300}},
    )
    with running(config) as base:
        assert _post(base).status_code == 200
    media = _one(records(topic))["media"]
    for entry in media:
        assert "X-Amz-Expires=300" in entry["url"]
        # Plain HTTP, no credentials: what a consumer without S3 access does.
        got = httpx.get(entry["url"], timeout=30)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == entry["sha256"]


def test_parts_are_put_off_the_event_loop(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    # The body is far below the large-body threshold: a remote store alone moves translation
    # to a worker thread, so S3 round trips never stall the loop serving other callbacks.
    from connector.media import S3MediaStore

    put_on: set[bool] = set()
    real_store = S3MediaStore.store

    def spy(self: S3MediaStore, *args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            put_on.add(True)
        except RuntimeError:
            put_on.add(False)
        return real_store(self, *args)

    monkeypatch.setattr(S3MediaStore, "store", spy)
    with running(config) as base:
        assert _post(base).status_code == 200
    assert put_on == {False}  # never on a thread running an event loop
