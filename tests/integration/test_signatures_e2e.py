"""Every provider that signs its callbacks, over HTTP into the real Kafka, behind a (pretend)
proxy: the connector is configured with the public URL the provider posts to, and reached on
loopback. A forged callback is refused before anything is parsed or published; the signed
one is published, once.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from connector.config import Config
from connector.providers import PROVIDERS
from tests import signing
from tests.live import running

pytestmark = pytest.mark.integration

SIGNING = sorted(name for name, p in PROVIDERS.items() if p.signature is not None)
QUERY = "tenant=t1"
MAX_BODY_BYTES = 65_536


@pytest.mark.parametrize("name", SIGNING)
def test_only_the_signed_callback_is_published(
    make_config, records, topic: str, dlq_topic: str, tmp_path: Path, name: str
) -> None:
    provider = PROVIDERS[name]
    mechanism = provider.signature
    assert mechanism is not None
    key, forger = signing.key_for(mechanism, "ours"), signing.key_for(mechanism, "forger")
    (tmp_path / "key").write_text(key.config)
    public = f"https://mms.example.com/callbacks/{name}"
    config: Config = make_config(
        {name: {"enabled": True, "topic": topic, "max_body_bytes": MAX_BODY_BYTES,
                "auth": {"signature": {"keys": [{"file": str(tmp_path / "key")}],
                                       **({"url": public} if mechanism.signs_url else {})}}}}
    )  # fmt: skip
    body, content_type = provider.sample.body, provider.sample.content_type
    with running(config) as base:

        def post(signer: signing.TestKey) -> httpx.Response:
            headers = signing.signed_headers(
                mechanism, f"{public}?{QUERY}", {"content-type": content_type}, body,
                time.time(), signer,
            )  # fmt: skip
            return httpx.post(
                f"{base}/callbacks/{name}?{QUERY}", content=body, headers=headers, timeout=30
            )

        forged = post(forger)
        unsigned = httpx.post(
            f"{base}/callbacks/{name}?{QUERY}", content=body,
            headers={"content-type": content_type}, timeout=30,
        )  # fmt: skip
        # Too large to keep, so never verified: refused, and nothing of it dead-lettered.
        oversized = httpx.post(
            f"{base}/callbacks/{name}", content=b"x" * (MAX_BODY_BYTES + 1),
            headers={"content-type": content_type, "x-attacker": "chosen"}, timeout=30,
        )  # fmt: skip
        signed = post(key)
    assert (forged.status_code, forged.json()["error"]) == (403, "signature_invalid")
    unsigned_status = getattr(mechanism, "unsigned_status", 401)  # Vonage: 503, to resend
    assert (unsigned.status_code, unsigned.json()["error"]) == (
        unsigned_status,
        "signature_missing",
    )
    assert (oversized.status_code, oversized.json()["error"]) == (413, "body_too_large")
    assert signed.status_code == 200, signed.text
    [record] = records(topic)
    assert record.value["provider"] == name
    assert records(dlq_topic) == []
