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

# Never stored: they carry credentials (a provider's token header is added per route).
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def record(
    provider: str,
    route: str,
    callback: Callback,
    refusal: Refusal,
    secret_headers: Collection[str] = (),
) -> dict[str, Any]:
    """The DeadLetter Avro record (schemas/dead_letter.v1.avsc) for a refused callback."""
    hidden = CREDENTIAL_HEADERS | {h.lower() for h in secret_headers}
    return {
        "provider": provider,
        "route": route,
        "error_code": refusal.code,
        "error_detail": refusal.detail,
        "received_at": callback.received_at,
        "headers": {k: v for k, v in callback.headers.items() if k not in hidden},
        "body": callback.body,
        "body_sha256": hashlib.sha256(callback.body).hexdigest(),
    }


def callback(letter: dict[str, Any]) -> Callback:
    """The callback a dead letter was made from, to translate it again."""
    headers = dict(letter["headers"])
    received_at: datetime = letter["received_at"]
    return Callback(letter["body"], headers, received_at, headers.get("content-type", ""))
