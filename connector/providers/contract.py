"""The provider contract: what a provider declares, what its parser receives, what it answers.

A provider module declares one `Provider`: its name, its translate function, its own config
options (a pydantic model), its replies, how it signs callbacks and a sample callback.
Everything else (routes, config validation, the chart, `dev`, bench) derives from that
declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict

from connector.record import MmsEvent

if TYPE_CHECKING:
    from connector.media import MediaStore
    from connector.providers.signatures import Signature


@dataclass(frozen=True, slots=True)
class Callback:
    """One HTTP callback as received: raw body, headers with lower-cased names."""

    body: bytes
    headers: Mapping[str, str]
    received_at: datetime
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    """Budgets every parser checks as it goes, so a hostile body is refused before it costs.

    The defaults sit far above real traffic: a real callback holds one event (Bandwidth batches
    a few), a handful of media and recipients, and tens of JSON containers or XML elements.
    """

    # JSON values (containers, items, members) or XML elements and attributes in one body:
    # 10 MB of `[{},{},...]` parsed whole took 6 s and +460 MiB before any check could run.
    max_elements: int = 10_000
    max_events: int = 100
    max_media: int = 50  # per event
    max_recipients: int = 100  # to + cc + bcc, per event


class Options(BaseModel):
    """A provider's own config keys, beside the common ones (`providers.<name>.<key>`); a
    provider with options subclasses this. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=Options)


@dataclass(frozen=True, slots=True)
class TranslateContext(Generic[OptionsT]):
    """Per-provider settings a parser may need; nothing here does I/O but the media store,
    which only a provider that `stores_media` is given."""

    options: OptionsT
    default_country: str | None = None
    limits: Limits = field(default_factory=Limits)
    media_store: MediaStore | None = None


# Refusal details often echo what was sent; they go into replies, log lines and dead letters.
MAX_DETAIL_CHARS = 300


class Refusal(Exception):
    """A callback that cannot be translated. `code` is stable for clients; `detail` says why.

    The detail is cut to MAX_DETAIL_CHARS: a 5 MB echoed value made the dead letter too large
    for Kafka, so the callback was answered 503 on every retry.
    """

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        detail = shorten(detail)
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


def shorten(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    media_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def media_store_failed(exc: OSError) -> Refusal:
    """Storing inline media failed: ours, not the provider's; a 503 makes it retry once the
    store is back."""
    return Refusal("media_store_failed", f"storing a part failed: {exc}", status=503)


def json_reply(status: int, payload: dict[str, object]) -> Reply:
    return Reply(status, orjson.dumps(payload), "application/json")


def accepted_json(events: Sequence[MmsEvent]) -> Reply:
    """Default acknowledgement: 200 with the event ids, handy when debugging a provider."""
    return json_reply(200, {"status": "accepted", "event_ids": [e.event_id for e in events]})


def empty_200(_outcome: object) -> Reply:
    """200 with an empty body: for providers that require it, or would read a body as a reply
    to send. Used for accepted callbacks and, once an untranslatable one is safe in the
    dead-letter topic, for that one too: retrying it is pointless."""
    return Reply(200)


def dead_lettered_200(refusal: Refusal) -> Reply:
    """200 naming the refusal, once the callback is safe in the dead-letter topic: for providers
    that retry anything but a 2xx (Telnyx, Infobip) or ask for a 200 on every webhook (Vonage).
    Retrying an untranslatable callback is pointless."""
    return json_reply(
        200, {"status": "dead_lettered", "error": refusal.code, "detail": refusal.detail}
    )


def refused_json(refusal: Refusal) -> Reply:
    """Default refusal: the status and a JSON body naming the problem."""
    return json_reply(refusal.status, {"error": refusal.code, "detail": refusal.detail})


@dataclass(frozen=True, slots=True)
class Sample:
    """One realistic callback of the provider: what `mms-connector dev` offers to send."""

    body: bytes
    content_type: str
    description: str


@dataclass(frozen=True, slots=True)
class Provider:
    """Everything provider-specific: how to translate a callback and how to answer it."""

    name: str
    translate: Callable[[Callback, TranslateContext[Any]], list[MmsEvent]]
    sample: Sample
    options: type[Options] = Options
    accepted: Callable[[Sequence[MmsEvent]], Reply] = accepted_json
    refused: Callable[[Refusal], Reply] = refused_json
    # The answer once an untranslatable callback is safe in the dead-letter topic: whatever
    # stops this provider's pointless retries.
    dead_lettered: Callable[[Refusal], Reply] = refused_json
    # Whether translating puts inline media into the media store (I/O inside translate).
    stores_media: bool = False
    # How the provider signs its callbacks (connector/providers/signatures.py), if it does:
    # the config then gives the keys (`auth.signature`), and check-config warns without them.
    signature: Signature | None = None
