"""`translate` and `check-config`: what users run without a broker."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connector.cli import main
from tests.helpers import PAYLOADS


def run(capfdbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, bytes]:
    code = main(list(argv))
    out, err = capfdbinary.readouterr()
    return code, out, err


def test_translate_prints_what_would_be_published(capfdbinary) -> None:
    file = PAYLOADS / "bandwidth_v2" / "message_delivered_and_failed.json"
    code, out, _ = run(capfdbinary, "translate", "--provider", "bandwidth-v2", str(file))
    assert code == 0
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [(x["topic"], x["key"], x["headers"]["event_type"]) for x in lines] == [
        ("mms.events", "+19196494865", "delivered"),
        ("mms.events", "+19196494865", "failed"),
    ]
    failed = lines[1]["value"]
    assert failed["occurred_at"] == "2024-03-14T15:10:04.908000Z"
    assert failed["received_at"].endswith("Z")
    assert failed["error_code"] == "4405"
    assert lines[1]["headers"]["event_id"] == failed["event_id"]


def test_translate_uses_the_config_topic_and_country(tmp_path: Path, capfdbinary) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "providers:\n  bandwidth-v2: {enabled: true, topic: sms.in, default_country: US}\n"
    )
    body = tmp_path / "b.json"
    body.write_text(
        '[{"type":"message-received","message":{"id":"1","owner":"9195550002",'
        '"direction":"in","from":"7045551234","to":["9195550002"]}}]'
    )
    code, out, _ = run(
        capfdbinary,
        "translate",
        "--config",
        str(config),
        "--provider",
        "bandwidth-v2",
        "--header",
        "X-Request-Id: abc",
        str(body),
    )
    assert code == 0
    line = orjson.loads(out)
    assert (line["topic"], line["key"]) == ("sms.in", "+19195550002")


def test_translate_shows_the_refusal(tmp_path: Path, capfdbinary) -> None:
    body = tmp_path / "b.json"
    body.write_text("[]")
    code, out, err = run(capfdbinary, "translate", "--provider", "bandwidth-v2", str(body))
    assert (code, out) == (1, b"")
    # The last line: stderr is shared with logging, which may say other things first.
    last = err.splitlines()[-1]
    assert last.startswith(b"400 ")
    assert b"no_events" in last


def test_translate_unknown_provider(capfdbinary) -> None:
    code, _, err = run(capfdbinary, "translate", "--provider", "nope", "-")
    assert code == 2
    assert b"unknown provider 'nope'" in err


def test_check_config_accepts_the_examples(capfdbinary) -> None:
    for example in sorted((Path(__file__).parents[2] / "config").glob("*.yaml")):
        code, out, err = run(capfdbinary, "check-config", str(example))
        assert (code, err) == (0, b""), example
        assert b"OK" in out


def test_check_config_names_each_bad_key(tmp_path: Path, capfdbinary) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "server: {port: seventy}\n"
        "providers:\n  bandwidth-v2: {enabled: true, path: no-slash, topic: 'a b'}\n"
    )
    code, _, err = run(capfdbinary, "check-config", str(bad))
    assert code == 2
    text = err.decode()
    assert "server.port" in text
    assert "providers.bandwidth-v2.path: Value error, must start with '/'" in text
    assert "providers.bandwidth-v2.topic" in text


def test_translate_a_missing_file_is_a_message_not_a_traceback(capfdbinary) -> None:
    code, out, err = run(capfdbinary, "translate", "--provider", "sinch", "/no/such/file.xml")
    assert (code, out) == (2, b"")
    assert err == b"/no/such/file.xml: No such file or directory\n"


def test_translate_shows_a_record_too_large_as_the_endpoint_answers(
    tmp_path: Path, capfdbinary
) -> None:
    event = orjson.loads((PAYLOADS / "bandwidth_v2" / "message_sending.json").read_bytes())[0]
    event["message"]["text"] = "x" * 1_100_000  # over Kafka's default 1,000,000-byte limit
    file = tmp_path / "big.json"
    file.write_bytes(orjson.dumps([event]))
    code, out, err = run(capfdbinary, "translate", "--provider", "bandwidth-v2", str(file))
    assert (code, out) == (1, b"")
    assert err.startswith(b'413 {"error":"record_too_large"')


def test_check_config_warns_about_providers_open_to_anyone(tmp_path: Path, capfdbinary) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  sinch: {enabled: true}\n"
        "  openmarket: {enabled: true, auth: {unauthenticated: true}}\n"
    )
    code, _, err = run(capfdbinary, "check-config", str(path))
    assert code == 0
    assert err.decode().splitlines() == [
        f"{path}: warning: providers.sinch.auth: no basic, token, signature or allow_cidrs: "
        "anyone can post callbacks (set auth.unauthenticated: true to say so)"
    ]
