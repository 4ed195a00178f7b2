"""Signing callbacks as providers do, for tests: one signer per mechanism of
connector/providers/signatures.py, so every provider that declares one is tested the same way
(tests/unit/test_signatures.py) without a signer of its own.

A `TestKey` is what the config holds (`config`: a shared secret, or Telnyx's public key) and
what the provider signs with (`secret`: the same secret, or the private key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from connector.providers.signatures import Ed25519, Hmac, JwtBodyHash, Signature, Signed

NONCE = "12345678901234567890"


@dataclass(frozen=True)
class TestKey:
    config: str
    secret: bytes | Ed25519PrivateKey


def key_for(mechanism: Signature, seed: str) -> TestKey:
    """A key pair for `mechanism`, the same for the same `seed`."""
    if isinstance(mechanism, Ed25519):
        private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return TestKey(base64.b64encode(public).decode(), private)
    secret = hashlib.sha256(seed.encode()).hexdigest()[:32]
    return TestKey(secret, secret.encode())


def signed_headers(
    mechanism: Signature, url: str, headers: Mapping[str, str], body: bytes, now: float,
    key: TestKey,
) -> dict[str, str]:  # fmt: skip
    """`headers` with the provider's signature (and its timestamp or nonce) added, as the
    provider would send for `body` posted to `url` at `now`."""
    out = dict(headers)
    if isinstance(mechanism, Hmac):
        assert isinstance(key.secret, bytes)
        if mechanism.timestamp_header:
            out[mechanism.timestamp_header] = str(int(now))
        if mechanism.nonce_header:
            out[mechanism.nonce_header] = NONCE
        message = mechanism.signed(Signed(url, out, body, now))[0]
        digest = hmac.new(key.secret, message, mechanism.digest).digest()
        out[mechanism.header] = (
            base64.b64encode(digest).decode() if mechanism.encoding == "base64" else digest.hex()
        )
    elif isinstance(mechanism, Ed25519):
        assert isinstance(key.secret, Ed25519PrivateKey)
        out[mechanism.timestamp_header] = str(int(now))
        signature = key.secret.sign(str(int(now)).encode() + b"|" + body)
        out[mechanism.header] = base64.b64encode(signature).decode()
    elif isinstance(mechanism, JwtBodyHash):
        assert isinstance(key.secret, bytes)
        claims = {
            "iat": int(now), "jti": "a3c6f1b2", "iss": "test",
            mechanism.claim: hashlib.sha256(body).hexdigest(),
        }  # fmt: skip
        out[mechanism.header] = "Bearer " + jwt.encode(claims, key.secret, algorithm="HS256")
    else:
        raise AssertionError(f"no test signer for {type(mechanism).__name__}")
    return out
