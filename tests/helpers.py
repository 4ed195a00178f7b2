"""Shared test helpers: build callbacks, load payload files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from connector.providers.contract import Callback
from connector.record import MmsEvent

PAYLOADS = Path(__file__).parent / "payloads"
RECEIVED_AT = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def payload(provider_dir: str, name: str) -> bytes:
    return (PAYLOADS / provider_dir / name).read_bytes()


def callback(body: bytes | str, headers: dict[str, str] | None = None) -> Callback:
    raw = body.encode() if isinstance(body, str) else body
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return Callback(raw, lowered, RECEIVED_AT, lowered.get("content-type", ""))


def fields(event: MmsEvent, *names: str) -> dict[str, object]:
    record = event.to_avro()
    return {n: record[n] for n in names}
