"""Dead letters over HTTP into the real broker: what is kept, what the provider is told, and the
`dlq list` / `dlq replay` commands re-driving them after a fix."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from connector.cli import main
from connector.config import Config
from connector.devstack import Endpoints
from connector.record import event_id
from tests.helpers import payload
from tests.live import Record, config_for, free_port, running

pytestmark = pytest.mark.integration

ENV_PASSWORD = "MMS_TEST_DLQ_BASIC_PASSWORD"
ENV_TOKEN = "MMS_TEST_DLQ_TOKEN"
PASSWORD = "pw-" + uuid.uuid4().hex
TOKEN = "tok-" + uuid.uuid4().hex
BANDWIDTH_AUTH = {
    "basic": {"username": "bandwidth", "password": {"env": ENV_PASSWORD}},
    "token": {"header": "X-Bw-Token", "value": {"env": ENV_TOKEN}},
}
CREDENTIALS = {
    "Authorization": "Basic " + base64.b64encode(f"bandwidth:{PASSWORD}".encode()).decode(),
    "X-Bw-Token": TOKEN,
    "Cookie": "session=very-secret",
}
# Authenticates, is valid JSON, but an event without message.id cannot become a record.
NO_MESSAGE_ID = (
    b'[{"type":"message-received","time":"2024-03-14T15:09:26.535Z",\r\n'
    b' "message":{"owner":"+19195554321","to":["+19195554321"]}}]  '
)
OPENMARKET_MO = payload("openmarket", "mo_doc_example.txt")
MO_CONTENT_TYPE = "multipart/mixed; boundary=mimeboundary"
MO_EVENT_ID = event_id("openmarket", "MO", "123456789012345")


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    monkeypatch.setenv(ENV_TOKEN, TOKEN)


def test_untranslatable_bandwidth_callback_is_dead_lettered_then_refused(
    make_config: Callable[..., Config],
    records: Callable[[str], list[Record]],
    topic: str,
    dlq_topic: str,
) -> None:
    config = make_config(
        {"bandwidth-v2": {"enabled": True, "topic": topic, "auth": BANDWIDTH_AUTH}}
    )
    before = datetime.now(UTC)
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/bandwidth-v2",
            content=NO_MESSAGE_ID,
            headers={**CREDENTIALS, "Content-Type": "application/json", "X-Request-Id": "r-1"},
            timeout=30,
        )
    after = datetime.now(UTC)

    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": "missing_field", "detail": "events[0].message.id is required"}
    assert records(topic) == []

    [letter] = records(dlq_topic)
    assert (letter.key, letter.headers) == (
        "bandwidth-v2",
        {"provider": "bandwidth-v2", "error_code": "missing_field"},
    )
    value = letter.value
    assert value["body"] == NO_MESSAGE_ID
    assert value["body_sha256"] == hashlib.sha256(NO_MESSAGE_ID).hexdigest()
    assert (value["provider"], value["route"], value["error_code"]) == (
        "bandwidth-v2",
        "/callbacks/bandwidth-v2",
        "missing_field",
    )
    assert value["error_detail"] == "events[0].message.id is required"
    assert before <= value["received_at"] <= after
    headers = value["headers"]
    assert not {"authorization", "cookie", "x-bw-token"} & set(headers)
    assert headers["x-request-id"] == "r-1"
    assert headers["content-type"] == "application/json"
    text = orjson.dumps(value, default=str).decode()
    assert PASSWORD not in text and TOKEN not in text and "very-secret" not in text


def test_untranslatable_openmarket_callback_gets_an_empty_200_once_dead_lettered(
    make_config: Callable[..., Config],
    records: Callable[[str], list[Record]],
    topic: str,
    dlq_topic: str,
) -> None:
    config = make_config({"openmarket": {"enabled": True, "topic": topic}})
    body = b'{"type":"REPORT","mtId":'  # truncated
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/openmarket",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert (reply.status_code, reply.content) == (200, b"")
    assert records(topic) == []
    [letter] = records(dlq_topic)
    assert letter.value["provider"] == "openmarket"
    assert letter.value["route"] == "/callbacks/openmarket"
    assert letter.value["error_code"] == "invalid_json"
    assert letter.value["body"] == body


def test_a_body_larger_than_a_kafka_message_is_kept_in_the_media_store(
    make_config: Callable[..., Config], topic: str, dlq_topic: str, records, tmp_path: Path
) -> None:
    config = make_config({"openmarket": {"enabled": True, "topic": topic}})
    # Over Kafka's ~1 MB message limit but under the 10 MB body limit; not valid JSON.
    body = b"{" + b"x" * 2_000_000
    with running(config) as base:
        reply = httpx.post(
            f"{base}/callbacks/openmarket",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert (reply.status_code, reply.content) == (200, b"")
    [letter] = records(dlq_topic)
    assert letter.value["body"] == b""
    assert letter.value["body_sha256"] == hashlib.sha256(body).hexdigest()
    stored = Path(letter.value["body_uri"].removeprefix("file://"))
    assert stored.read_bytes() == body


def test_dead_letter_write_failing_is_503(endpoints: Endpoints, tmp_path: Path) -> None:
    # A registry that works, a broker address where nothing listens.
    config = config_for(
        endpoints,
        tmp_path,
        {
            "bandwidth-v2": {"enabled": True, "deadline_seconds": 1, "auth": BANDWIDTH_AUTH},
            "openmarket": {"enabled": True, "deadline_seconds": 1},
        },
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}", "flush_timeout_seconds": 1},
        dedupe={"rebuild_on_start": False},
        dead_letters={"topic": f"mms.test.dlq.{uuid.uuid4().hex[:12]}"},
    )
    with running(config) as base:
        bandwidth = httpx.post(
            f"{base}/callbacks/bandwidth-v2", content=NO_MESSAGE_ID, headers=CREDENTIALS, timeout=30
        )
        # OpenMarket gets its 200 only once the dead letter is safe; here it must retry.
        openmarket = httpx.post(f"{base}/callbacks/openmarket", content=b"{", timeout=30)
    for reply in (bandwidth, openmarket):
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == "5"
        assert reply.json()["error"] == "kafka_unavailable"


def write_config(path: Path, endpoints: Endpoints, dlq_topic: str, **providers: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": endpoints.bootstrap_servers,
                    "flush_timeout_seconds": 10,
                },
                "schema_registry": {"url": endpoints.registry_url},
                "media": {"root": str(path.parent / "media")},
                "dead_letters": {"topic": dlq_topic},
                "providers": providers,
            }
        )
    )
    return path


def cli(capfdbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[list[Any], bytes]:
    assert main(list(argv)) == 0
    out, err = capfdbinary.readouterr()
    return [orjson.loads(line) for line in out.splitlines()], err


def test_dlq_list_and_replay_after_a_fix(
    endpoints: Endpoints,
    records: Callable[[str], list[Record]],
    topic: str,
    dlq_topic: str,
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    # In production OpenMarket's MOs were refused: max_parts was set below what real MOs have.
    strict = config_for(
        endpoints,
        tmp_path / "media",
        {
            "openmarket": {"enabled": True, "topic": topic, "max_parts": 2},
            "bandwidth-v2": {"enabled": True, "topic": topic, "auth": BANDWIDTH_AUTH},
        },
        dead_letters={"topic": dlq_topic},
    )
    broken_report = b'{"type":"REPORT","mtId":"1","status":'
    with running(strict) as base:
        replies = [
            httpx.post(
                f"{base}/callbacks/openmarket",
                content=body,
                headers={"Content-Type": content_type},
                timeout=30,
            )
            for body, content_type in (
                (OPENMARKET_MO, MO_CONTENT_TYPE),
                (broken_report, "application/json"),
                # OpenMarket's retry of the same MO: a second dead letter of the same body.
                (OPENMARKET_MO, MO_CONTENT_TYPE),
            )
        ]
        replies.append(
            httpx.post(
                f"{base}/callbacks/bandwidth-v2",
                content=NO_MESSAGE_ID,
                headers=CREDENTIALS,
                timeout=30,
            )
        )
    assert [r.status_code for r in replies] == [200, 200, 200, 400]
    assert records(topic) == []

    # The fix: the limit raised. Bandwidth v2 is not enabled on this replay's config.
    fixed = write_config(
        tmp_path / "fixed.yaml",
        endpoints,
        dlq_topic,
        openmarket={"enabled": True, "topic": topic, "max_parts": 50},
    )
    listed, _ = cli(capfdbinary, "dlq", "list", "--config", str(fixed))
    assert [
        (x["offset"], x["value"]["provider"], x["value"]["error_code"], x["value"]["body_bytes"])
        for x in listed
    ] == [
        (0, "openmarket", "too_many_parts", len(OPENMARKET_MO)),
        (1, "openmarket", "invalid_json", len(broken_report)),
        (2, "openmarket", "too_many_parts", len(OPENMARKET_MO)),
        (3, "bandwidth-v2", "missing_field", len(NO_MESSAGE_ID)),
    ]
    assert all("body" not in x["value"] for x in listed)
    assert all(x["topic"] == dlq_topic for x in listed)

    replayed, err = cli(capfdbinary, "dlq", "replay", "--config", str(fixed))
    assert [(x["offset"], x["outcome"]) for x in replayed] == [
        (0, "published"),
        (1, "still_failing"),
        # The same MO twice in the dead-letter topic (a retried callback) is published once.
        (2, "already_published"),
        (3, "provider_not_enabled"),
    ]
    assert replayed[0]["event_ids"] == replayed[2]["event_ids"] == [MO_EVENT_ID]
    assert replayed[1]["error"] == "invalid_json"
    assert orjson.loads(err.splitlines()[-1]) == {
        "summary": {
            "published": 1,
            "already_published": 1,
            "still_failing": 1,
            "body_missing": 0,
            "provider_not_enabled": 1,
        }
    }

    [mo] = records(topic)
    assert mo.value["event_id"] == MO_EVENT_ID
    assert (mo.value["provider"], mo.value["event_type"], mo.key) == (
        "openmarket",
        "received",
        "88600",
    )
    assert mo.value["text"] == "This is a text attachment"
    assert [m["content_type"] for m in mo.value["media"]] == ["image/jpeg"]
    # The dead-letter topic is left as it was: what still fails can be replayed after a later fix.
    assert len(records(dlq_topic)) == 4

    # Replaying again publishes nothing new: the event is already in the topic.
    again, _ = cli(capfdbinary, "dlq", "replay", "--config", str(fixed))
    assert [x["outcome"] for x in again] == [
        "already_published",
        "still_failing",
        "already_published",
        "provider_not_enabled",
    ]
    assert [r.value["event_id"] for r in records(topic)] == [MO_EVENT_ID]
