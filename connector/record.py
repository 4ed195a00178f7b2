"""The canonical MMS event: what every provider callback becomes, one per event."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EventType = Literal["received", "sending", "sent", "delivered", "failed"]
Direction = Literal["inbound", "outbound"]

# Fixed namespace so every replica derives the same UUIDv5 for the same provider identity.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a0e-3b1d-5c8e-9a47-2d0b8e4f7a10")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def event_id(provider: str, *identity: object) -> str:
    """Deterministic event id from the provider's own identity of the event.

    Retries of one callback carry the same identity, so they get the same id on any replica.
    Parts must hold no control character (providers.fields.event_id refuses them), so the join is
    unambiguous.
    """
    parts = "\x1f".join("" if p is None else str(p) for p in identity)
    # uuid.uuid5 as RFC 4122 defines it, without building a UUID object: 1.8 us, not 5.7.
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{provider}\x1e{parts}".encode()).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


MediaStatus = Literal["stored", "provider", "unavailable"]


@dataclass(frozen=True, slots=True)
class Media:
    """One attachment, as schema v2's Media record names its fields (their docs are there)."""

    uri: str
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    filename: str | None = None
    source_uri: str | None = None
    url: str | None = None
    status: MediaStatus | None = None
    reason: str | None = None


@dataclass(slots=True)
class MmsEvent:
    event_id: str
    provider: str
    event_type: EventType
    direction: Direction
    owner: str
    received_at: datetime
    from_: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    text: str | None = None
    subject: str | None = None
    media: list[Media] = field(default_factory=list)
    provider_message_id: str | None = None
    application_id: str | None = None
    tag: str | None = None
    occurred_at: datetime | None = None
    segment_count: int | None = None
    error_code: str | None = None
    error_description: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    def to_avro(self) -> dict[str, Any]:
        """The record as the Avro schema names its fields (`from` is a Python keyword).

        Written out rather than dataclasses.asdict(), whose deep copies showed in profiles.
        """
        return {
            "event_id": self.event_id,
            "provider": self.provider,
            "event_type": self.event_type,
            "direction": self.direction,
            "owner": self.owner,
            "from": self.from_,
            "to": self.to,
            "cc": self.cc,
            "bcc": self.bcc,
            "text": self.text,
            "subject": self.subject,
            "media": [
                {
                    "uri": m.uri,
                    "content_type": m.content_type,
                    "size": m.size,
                    "sha256": m.sha256,
                    "filename": m.filename,
                    "source_uri": m.source_uri,
                    "url": m.url,
                    "status": m.status,
                    "reason": m.reason,
                }
                for m in self.media
            ],
            "provider_message_id": self.provider_message_id,
            "application_id": self.application_id,
            "tag": self.tag,
            "occurred_at": self.occurred_at,
            "received_at": self.received_at,
            "segment_count": self.segment_count,
            "error_code": self.error_code,
            "error_description": self.error_description,
            "attributes": self.attributes,
        }


def attribute_value(value: object) -> str:
    """Attributes are a map of strings: keep strings as they are, JSON-encode the rest."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def flatten_attributes(
    data: dict[str, Any], consumed: set[str], prefix: str = ""
) -> dict[str, str]:
    """Every field of `data` not in `consumed` (dotted paths), so nothing is lost in translation.

    Nested objects are walked so their unmapped fields get their own dotted keys; arrays and
    scalars are kept whole.
    """
    out: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if path in consumed:
            continue
        if isinstance(value, dict):
            out.update(flatten_attributes(value, consumed, f"{path}."))
        elif value is not None:
            out[path] = attribute_value(value)
    return out
