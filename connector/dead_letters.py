"""Dead letters: callbacks that authenticated but could not be translated, kept raw.

A dead letter holds the body exactly as received and the headers without credentials, so a
later `mms-connector dlq replay` can run it through fixed parsers.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from connector.media import MediaStore
from connector.providers.contract import Callback, Refusal

# The only headers kept: what the parsers read (content-type; OpenMarket's x-request-id) and
# what tells where a callback came from. An allowlist, because credentials travel in headers
# nobody can list in advance (X-Forwarded-Authorization carried a real Basic credential).
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "host",
        "user-agent",
        "x-request-id",
        "x-forwarded-for",
    }
)


def record(
    provider: str,
    route: str,
    callback: Callback,
    refusal: Refusal,
    store: MediaStore | None = None,
    inline_max_bytes: int | None = None,
) -> dict[str, Any]:
    """The DeadLetter Avro record (schemas/dead_letter.v1.avsc) for a refused callback.

    A body too large for a Kafka message goes to the media store; the letter points to it.
    """
    body, body_uri, digest = callback.body, None, None
    if store is not None and inline_max_bytes is not None and len(body) > inline_max_bytes:
        stored = store.store(body, callback.content_type or None, None)
        body, body_uri, digest = b"", stored.uri, stored.sha256  # hashed once, by the store
    return {
        "provider": provider,
        "route": route,
        "error_code": refusal.code,
        "error_detail": refusal.detail,
        "received_at": callback.received_at,
        "headers": {k: v for k, v in callback.headers.items() if k in KEPT_HEADERS},
        "body": body,
        "body_uri": body_uri,
        "body_sha256": digest or hashlib.sha256(callback.body).hexdigest(),
    }


def callback(letter: dict[str, Any], store: MediaStore | None = None) -> Callback:
    """The callback a dead letter was made from, to translate it again."""
    headers = dict(letter["headers"])
    received_at: datetime = letter["received_at"]
    body = letter["body"]
    if letter.get("body_uri"):
        if store is None:
            raise ValueError("the dead letter's body is in the media store; none configured")
        body = store.load(letter["body_uri"])
    return Callback(body, headers, received_at, headers.get("content-type", ""))
