"""Dead letters: callbacks that authenticated but could not be translated, kept raw.

A dead letter holds the body exactly as received and the headers without credentials, so a
later `mms-connector dlq replay` can run it through fixed parsers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

from connector.callback import Callback, Refusal
from connector.media import MediaStore

# Never stored: they carry credentials (a provider's token header is added per route).
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def record(
    provider: str,
    route: str,
    callback: Callback,
    refusal: Refusal,
    secret_headers: Collection[str] = (),
    store: MediaStore | None = None,
    inline_max_bytes: int | None = None,
) -> dict[str, Any]:
    """The DeadLetter Avro record (schemas/dead_letter.v1.avsc) for a refused callback.

    A body too large for a Kafka message goes to the media store; the letter points to it.
    """
    hidden = CREDENTIAL_HEADERS | {h.lower() for h in secret_headers}
    body, body_uri = callback.body, None
    if store is not None and inline_max_bytes is not None and len(body) > inline_max_bytes:
        body, body_uri = b"", store.store(body, callback.content_type or None, None).uri
    return {
        "provider": provider,
        "route": route,
        "error_code": refusal.code,
        "error_detail": refusal.detail,
        "received_at": callback.received_at,
        "headers": {k: v for k, v in callback.headers.items() if k not in hidden},
        "body": body,
        "body_uri": body_uri,
        "body_sha256": hashlib.sha256(callback.body).hexdigest(),
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
