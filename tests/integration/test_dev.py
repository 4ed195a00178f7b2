"""`mms-connector dev` offers the first enabled provider's own sample, shipped in the package.

It used to name bandwidth-v2 and read a payload from tests/ (a KeyError with a config without
bandwidth-v2, and a missing file in a wheel install).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from connector import cli, devstack
from connector.config import Config
from connector.devstack import Endpoints
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
        "providers:\n"
        f"  openmarket: {{enabled: true, topic: {topic}, auth: {{unauthenticated: true}}}}\n"
    )
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
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/openmarket", content=sample.read_bytes(), headers={name: value}
        )
    assert (reply.status_code, reply.content) == (200, b""), reply.text
    (record,) = read_topic(endpoints, topic)
    assert record.value["provider"] == "openmarket"
    assert [m["status"] for m in record.value["media"]] == ["stored"]
