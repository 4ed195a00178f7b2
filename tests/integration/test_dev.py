"""`mms-connector dev` offers the first enabled provider's own sample, shipped in the package.

It used to name bandwidth-v2 and read a payload from tests/ (a KeyError with a config without
bandwidth-v2, and a missing file in a wheel install).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from redis.asyncio import Redis

from connector import cli, devstack, pipeline
from connector.claims import KEY_PREFIX, PUBLISHED
from connector.config import Config
from connector.devstack import Endpoints
from tests.helpers import callback
from tests.live import read_topic, running

pytestmark = pytest.mark.integration


def test_dev_offers_the_first_enabled_providers_sample(
    endpoints: Endpoints,
    tmp_path: Path,
    topic: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config_file = tmp_path / "dev.yaml"
    config_file.write_text(
        f"media: {{root: {tmp_path / 'media'}}}\n"
        # As config/dev.yaml: `dev` points it at the stack's Redis, its password from the env.
        "dedupe: {shared: {url: 'redis://127.0.0.1:1/0',"
        " password: {env: MMS_SHARED_WINDOW_PASSWORD}}}\n"
        "providers:\n"
        f"  openmarket: {{enabled: true, topic: {topic}, auth: {{unauthenticated: true}}}}\n"
    )
    # `dev` hands the stack's endpoints and secrets to the app through the environment;
    # monkeypatch puts it back afterwards.
    for name in ("MMS_SHARED_WINDOW_URL", "MMS_SHARED_WINDOW_PASSWORD", "MMS_S3_ENDPOINT_URL",
                 "MMS_S3_ACCESS_KEY_ID", "MMS_S3_SECRET_ACCESS_KEY"):  # fmt: skip
        monkeypatch.setenv(name, "")
    # The test stack stands in for the one `dev` would start; nothing is served by `dev` itself.
    monkeypatch.setenv("MMS_DEVSTACK_HOME", str(tmp_path / "stack"))
    (tmp_path / "stack").mkdir()
    monkeypatch.setattr(devstack, "up", lambda: endpoints)
    served: list[Config] = []
    monkeypatch.setattr(cli, "_run", lambda config, _host, _port: served.append(config))

    assert cli.main(["dev", "--config", str(config_file), "--port", "8099"]) == 0
    out = capsys.readouterr().out
    curl = next(line for line in out.splitlines() if "curl" in line).strip()
    header = re.search(r"-H '([^']*)'", curl)
    data = re.search(r"--data-binary @(\S+)", curl)
    assert header and data, out
    assert "http://127.0.0.1:8099/callbacks/openmarket" in out
    sample = Path(data.group(1))
    assert sample.parent == tmp_path / "stack"

    # What it says to send is taken: 200 (OpenMarket's empty reply) and a record on the topic.
    (config,) = served
    name, _, value = header.group(1).partition(": ")
    # The sample's event id is fixed: forget an earlier run's in the shared window.
    (route,) = pipeline.routes(config, env={})
    (encoded,) = pipeline.translate(route, callback(sample.read_bytes(), {name: value}))
    asyncio.run(redis_call("delete", KEY_PREFIX + encoded.event.event_id, endpoints))
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/openmarket", content=sample.read_bytes(), headers={name: value}
        )
    assert (reply.status_code, reply.content) == (200, b""), reply.text
    (record,) = read_topic(endpoints, topic)
    assert record.value["provider"] == "openmarket"
    assert [m["status"] for m in record.value["media"]] == ["stored"]
    # The stack's Redis holds the event as published: the shared window was in use.
    assert config.dedupe.shared is not None
    assert config.dedupe.shared.url.endswith(f":{urlsplit(endpoints.redis_url or '').port}/0")

    assert asyncio.run(redis_call("get", KEY_PREFIX + record.value["event_id"], endpoints)) == (
        PUBLISHED
    )


async def redis_call(command: str, key: str, endpoints: Endpoints) -> object:
    client = Redis.from_url(endpoints.redis_url or "")
    try:
        return await getattr(client, command)(key)
    finally:
        await client.aclose()
