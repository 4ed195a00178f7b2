"""What a provider parser receives and what it may answer: the pure side of a callback."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from connector.record import MmsEvent

if TYPE_CHECKING:
    from connector.media import MediaStore


@dataclass(frozen=True, slots=True)
class Callback:
    """One HTTP callback as received: raw body, headers with lower-cased names."""

    body: bytes
    headers: Mapping[str, str]
    received_at: datetime
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    max_parts: int = 50
    max_part_bytes: int = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TranslateContext:
    """Per-provider settings a parser may need; nothing here does I/O but the media store."""

    default_country: str | None = None
    limits: Limits = field(default_factory=Limits)
    media_store: MediaStore | None = None


class Refusal(Exception):
    """A callback that cannot be translated. `code` is stable for clients; `detail` says why."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def json_reply(status: int, payload: dict[str, object]) -> Reply:
    return Reply(status, orjson.dumps(payload), "application/json")


def accepted_json(events: Sequence[MmsEvent]) -> Reply:
    """Default acknowledgement: 200 with the event ids, handy when debugging a provider."""
    return json_reply(200, {"status": "accepted", "event_ids": [e.event_id for e in events]})


def refused_json(refusal: Refusal) -> Reply:
    """Default refusal: the status and a JSON body naming the problem."""
    return json_reply(refusal.status, {"error": refusal.code, "detail": refusal.detail})


@dataclass(frozen=True, slots=True)
class Provider:
    """Everything provider-specific: how to translate a callback and how to answer it."""

    name: str
    translate: Callable[[Callback, TranslateContext], list[MmsEvent]]
    accepted: Callable[[Sequence[MmsEvent]], Reply] = accepted_json
    refused: Callable[[Refusal], Reply] = refused_json
    # The answer once an untranslatable callback is safe in the dead-letter topic: whatever
    # stops this provider's pointless retries.
    dead_lettered: Callable[[Refusal], Reply] = refused_json
