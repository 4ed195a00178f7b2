"""Poison callbacks on the real app and broker (issue 9): a callback that can never become a
record is dead-lettered once and answered as the provider needs, never a 5xx on every retry,
never lost; echoed values are cut; repeats that differ are counted; dead letters keep no
credential. Each failed on the code before the fix (commit b25f525)."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from connector import pipeline
from connector.cli import main
from connector.config import Config
from connector.devstack import Endpoints
from connector.providers.contract import Refusal
from tests.helpers import callback, payload
from tests.live import Record, running
from tests.reliability.conftest import metric

pytestmark = pytest.mark.integration

OPEN = {"auth": {"unauthenticated": True}}
JSON = {"Content-Type": "application/json"}
MULTIPART = {"Content-Type": "multipart/mixed; boundary=b"}
SENDING = orjson.loads(payload("bandwidth_v2", "message_sending.json"))[0]


def bandwidth(message_id: str, **message: Any) -> bytes:
    return orjson.dumps(
        [{**SENDING, "message": {**SENDING["message"], "id": message_id, **message}}]
    )


def mo(text: bytes, charset: str = "utf-8") -> bytes:
    details = b'{"type":"MO","moId":"77","source":"447800000001","destinations":["88600"]}'
    return (
        b"--b\r\nContent-Type: application/json\r\nContent-Id: main\r\n\r\n"
        + details
        + f"\r\n--b\r\nContent-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n".encode()
        + base64.encodebytes(text)
        + b"\r\n--b--\r\n"
    )


@pytest.fixture
def config(make_config: Callable[..., Config], topic: str) -> Config:
    return make_config(
        {
            "bandwidth-v2": {"enabled": True, "topic": topic, **OPEN},
            "openmarket": {"enabled": True, "topic": topic, "max_body_bytes": 4_000_000, **OPEN},
        }
    )


def post(base: str, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/callbacks/{provider}", content=body, headers=headers, timeout=30)


def test_records_over_kafka_s_limit_are_dead_lettered_once_not_503_for_ever(
    config: Config, records: Callable[[str], list[Record]], topic: str, dlq_topic: str
) -> None:
    # OpenMarket inlines text parts up to 5 MB; Kafka takes 1,000,000 bytes by default.
    big_text = mo(b"x" * 1_200_000)
    big_bandwidth = bandwidth("m-big", text="y" * 1_100_000)
    with running(config) as base:
        # The counter is the process's: other tests may have counted before this one.
        kafka_errors = -metric(httpx.get(f"{base}/metrics").text, "mms_kafka_errors_total")
        # Twice each: the retry gets the same answer (it used to be 503, every time).
        replies = [post(base, "openmarket", big_text, MULTIPART) for _ in range(2)]
        replies += [post(base, "bandwidth-v2", big_bandwidth, JSON) for _ in range(2)]
        kafka_errors += metric(httpx.get(f"{base}/metrics").text, "mms_kafka_errors_total")

    assert [(r.status_code, r.content) for r in replies[:2]] == [(200, b"")] * 2
    assert [r.status_code for r in replies[2:]] == [413, 413]
    assert replies[2].json()["error"] == "record_too_large"
    assert kafka_errors == 0  # not taken for a Kafka outage
    assert records(topic) == []
    letters = records(dlq_topic)
    assert [(r.value["provider"], r.value["error_code"]) for r in letters] == [
        ("openmarket", "record_too_large"),
        ("openmarket", "record_too_large"),
        ("bandwidth-v2", "record_too_large"),
        ("bandwidth-v2", "record_too_large"),
    ]
    # The bodies are over a Kafka message too: kept in the media store, by reference.
    stored = Path(letters[0].value["body_uri"].removeprefix("file://"))
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == letters[0].value["body_sha256"]

    # `translate` (pipeline.translate) shows the same outcome as the endpoint.
    [route] = [r for r in pipeline.routes(config) if r.name == "openmarket"]
    with pytest.raises(Refusal) as info:
        pipeline.translate(route, callback(big_text, MULTIPART))
    assert info.value.code == "record_too_large"


def test_utf7_text_is_published_not_a_500_for_ever(
    config: Config, records: Callable[[str], list[Record]], topic: str
) -> None:
    # "+2D3cAA-" is utf-7 for a lone surrogate pair half: it made an unencodable record.
    with running(config) as base:
        reply = post(base, "openmarket", mo(b"hi +2D3cAA- there", "utf-7"), MULTIPART)
    assert (reply.status_code, reply.content) == (200, b"")
    [record] = records(topic)
    assert record.value["text"].startswith("hi ")
    assert "\ud800" not in record.value["text"]


def test_echoed_values_are_cut_in_the_reply_the_log_and_the_dead_letter(
    config: Config,
    records: Callable[[str], list[Record]],
    dlq_topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="connector")
    body = orjson.dumps([{**SENDING, "type": "t" * 900_000}])
    with running(config) as base:
        reply = post(base, "bandwidth-v2", body, JSON)
    assert reply.status_code == 400
    assert reply.json()["error"] == "unknown_event_type"
    assert len(reply.content) < 1000  # was 900 KB
    [letter] = records(dlq_topic)
    assert len(letter.value["error_detail"]) < 400
    lines = [r for r in caplog.records if getattr(r, "outcome", None) == "dead_lettered"]
    assert len(lines) == 1
    assert len(str(lines[0].__dict__)) < 5000


def test_a_repeat_whose_content_differs_is_counted_and_logged_not_silent(
    config: Config,
    records: Callable[[str], list[Record]],
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="connector")

    def conflicts(base: str) -> float:
        text = httpx.get(f"{base}/metrics").text
        return metric(text, "mms_conflicting_repeats_total", provider="bandwidth-v2")

    with running(config) as base:
        before = conflicts(base)
        first = post(base, "bandwidth-v2", bandwidth("m-clash", text="first"), JSON)
        same = post(base, "bandwidth-v2", bandwidth("m-clash", text="first"), JSON)
        other = post(base, "bandwidth-v2", bandwidth("m-clash", text="second"), JSON)
        after = conflicts(base)
    assert [r.status_code for r in (first, same, other)] == [200, 200, 200]
    assert after - before == 1  # the true repeat is not counted, the clash is
    assert [r.value["text"] for r in records(topic)] == ["first"]
    assert [r.getMessage() for r in caplog.records if "different content" in r.getMessage()]


def test_dead_letters_keep_no_credential_header(
    config: Config, records: Callable[[str], list[Record]], dlq_topic: str
) -> None:
    secrets = {
        "X-Forwarded-Authorization": "Basic Ync6cmVhbC1zZWNyZXQ=",
        "X-Api-Key": "key-real-secret",
        "X-Request-Id": "r-1",
    }
    with running(config) as base:
        reply = post(base, "bandwidth-v2", b"[{", {**JSON, **secrets})
    assert reply.status_code == 400
    [letter] = records(dlq_topic)
    assert letter.value["headers"]["x-request-id"] == "r-1"
    assert "real-secret" not in str(letter.value["headers"])
    assert "Ync6cmVhbC1zZWNyZXQ=" not in str(letter.value["headers"])


def test_an_over_size_openmarket_body_is_answered_200_and_dead_lettered(
    config: Config, records: Callable[[str], list[Record]], topic: str, dlq_topic: str
) -> None:
    # OpenMarket retries anything but 200 for ever: a 413 was a retry loop nobody saw.
    body = b"x" * 4_000_001
    with running(config) as base:
        openmarket = post(base, "openmarket", body, MULTIPART)
        others = post(base, "bandwidth-v2", b"[" + b" " * 10_500_000 + b"]", JSON)
    assert (openmarket.status_code, openmarket.content) == (200, b"")
    assert (others.status_code, others.json()["error"]) == (413, "body_too_large")
    assert records(topic) == []
    letters = records(dlq_topic)
    assert [(r.value["provider"], r.value["error_code"], r.value["body"]) for r in letters] == [
        ("openmarket", "body_too_large", b""),
        ("bandwidth-v2", "body_too_large", b""),
    ]
    assert letters[0].value["headers"]["content-type"] == MULTIPART["Content-Type"]


def test_dlq_replay_goes_on_past_a_letter_whose_body_is_gone(
    endpoints: Endpoints,
    config: Config,
    topic: str,
    dlq_topic: str,
    tmp_path: Path,
    records: Callable[[str], list[Record]],
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    with running(config) as base:
        # Kept in the media store (over a Kafka message), then lost with its pod's volume.
        assert post(base, "openmarket", b"{" + b"x" * 1_500_000, JSON).status_code == 200
        assert post(base, "bandwidth-v2", b"[{", JSON).status_code == 400
    letters = records(dlq_topic)
    Path(letters[0].value["body_uri"].removeprefix("file://")).unlink()

    path = tmp_path / "replay.yaml"
    providers = {name: config.providers[name].model_dump(mode="json") for name in config.providers}
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": endpoints.bootstrap_servers},
                "schema_registry": {"url": endpoints.registry_url},
                "media": {"root": str(config.media.root)},
                "dead_letters": {"topic": dlq_topic},
                "providers": providers,
            }
        )
    )
    assert main(["dlq", "replay", "--config", str(path)]) == 0
    out, err = capfdbinary.readouterr()
    outcomes = [orjson.loads(line)["outcome"] for line in out.splitlines()]
    assert outcomes == ["body_missing", "still_failing"]
    assert orjson.loads(err.splitlines()[-1])["summary"]["body_missing"] == 1
