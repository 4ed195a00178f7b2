"""Request signatures: the mechanisms providers sign their callbacks with, as data.

A provider declares one mechanism (`Provider.signature`) with its own header names and what it
signs; the config gives the keys (`auth.signature.keys`: two while one replaces the other), the
replay window and the URL the provider posts to. Every check runs on the raw bytes before
anything is parsed, compares in constant time and tries every key, and a failure is a
`Refusal`: 401 when there is no signature (or what the provider needs to send it again
signed), 403 when there is one and it does not verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connector.providers.contract import Limits, Refusal

# A signature header longer than this is not one: refused before decoding (a few keys' worth
# of base64 or a JWT of a few claims is far below).
MAX_SIGNATURE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Signed:
    """A callback as its signature covers it: the raw bytes, nothing parsed yet."""

    url: str  # as the provider posted to it: the configured public URL and the query sent
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    now: float  # Unix seconds
    # The route's budget for parsing what is signed (a form's fields), as translate has it.
    max_elements: int = Limits().max_elements


class Signature(Protocol):
    """One signing mechanism, declared by a provider."""

    @property
    def header(self) -> str:
        """The header the signature comes in (lower-case)."""

    @property
    def signs_url(self) -> bool:
        """Whether the signed message holds the URL, so the config must say what it is."""

    @property
    def signs_time(self) -> bool:
        """Whether the provider signs a timestamp, so a replay window applies."""

    @property
    def max_age_seconds(self) -> float:
        """The replay window when the config sets none."""

    def key(self, text: str) -> bytes:
        """A configured key as the mechanism uses it; ValueError says why one cannot be."""

    def verify(self, request: Signed, keys: Sequence[bytes], max_age: float) -> None:
        """Return if one of `keys` verifies `request`; else raise a 401/403 `Refusal`."""


def _header(request: Signed, name: str, unsigned_status: int = 401) -> str:
    value = request.headers.get(name, "").strip()
    if not value:
        raise Refusal("signature_missing", f"the {name} header is missing", unsigned_status)
    if len(value) > MAX_SIGNATURE_CHARS:
        raise Refusal("signature_invalid", f"the {name} header is too long", 403)
    return value


def _not_verified(name: str) -> Refusal:
    return Refusal("signature_invalid", f"{name} does not verify with any configured key", 403)


def _check_age(request: Signed, sent: str, name: str, max_age: float) -> None:
    try:
        at = float(sent)
    except ValueError:
        raise Refusal("signature_invalid", f"{name} is not a Unix time", 403) from None
    if not abs(request.now - at) <= max_age:  # also refuses NaN
        raise Refusal(
            "signature_stale",
            f"{name} is {request.now - at:.0f} s from now; at most {max_age:.0f} s is accepted",
            403,
        )


@dataclass(frozen=True, slots=True)
class Hmac:
    """An HMAC with a shared secret over what `signed` builds from the request (the URL and
    form parameters, the body, a nonce...), sent base64 or hex in `header`.

    `signed` may give several messages, any of which may be the one the provider signed
    (Twilio signs the URL with or without its default port). `separator` splits a header
    holding several signatures (Plivo sends one per auth token during a rotation).
    """

    header: str
    signed: Callable[[Signed], Sequence[bytes]]
    digest: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["base64", "hex"] = "base64"
    separator: str | None = None
    signs_url: bool = True
    # The header carrying the time the provider signed, checked against the replay window
    # (the builder must put it into the message for the window to mean anything).
    timestamp_header: str | None = None
    # The header carrying a nonce the builder puts into the message (Plivo), required.
    nonce_header: str | None = None
    # Further headers that may carry signatures of the same message made with other keys
    # (Plivo: the main account's token, beside the subaccount's).
    more_headers: tuple[str, ...] = ()
    max_age_seconds: float = 300.0

    @property
    def signs_time(self) -> bool:
        return self.timestamp_header is not None

    def key(self, text: str) -> bytes:
        return text.encode()

    def verify(self, request: Signed, keys: Sequence[bytes], max_age: float) -> None:
        value = _header(request, self.header)
        if self.timestamp_header is not None:
            _check_age(request, _header(request, self.timestamp_header), self.timestamp_header,
                       max_age)  # fmt: skip
        if self.nonce_header is not None:
            _header(request, self.nonce_header)
        values = [
            value,
            *(request.headers.get(h, "")[:MAX_SIGNATURE_CHARS] for h in self.more_headers),
        ]
        sent = [
            s.strip()
            for v in values
            for s in (v.split(self.separator) if self.separator else [v])
            if s.strip()
        ]
        sent_bytes = [s.encode("latin-1", "replace") for s in sent]
        try:
            messages = self.signed(request)
        except Refusal as refusal:
            # A body the provider cannot have signed (not a form, over the budget): nothing
            # verifies it, whichever key.
            raise Refusal(
                "signature_invalid", f"the signed message cannot be built ({refusal.code})", 403
            ) from None
        matched = False
        # Every key against every message and signature: which one matched is not timed.
        for message in messages:
            for key in keys:
                digest = hmac.new(key, message, self.digest).digest()
                expected = (
                    base64.b64encode(digest) if self.encoding == "base64" else digest.hex().encode()
                )
                for candidate in sent_bytes:
                    matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise _not_verified(self.header)


# The Ed25519 points of small order, sign bit cleared (libsodium's has_small_order list):
# OpenSSL verifies against them, and a key among them verifies forgeries.
SMALL_ORDER_POINTS = frozenset(
    bytes.fromhex(h)
    for h in (
        "00" * 32,  # order 4
        "01" + "00" * 31,  # the neutral element
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "ec" + "ff" * 30 + "7f",  # p - 1: order 2
        "ed" + "ff" * 30 + "7f",  # p, i.e. 0, not reduced
        "ee" + "ff" * 30 + "7f",  # p + 1, i.e. 1, not reduced
    )
)


@dataclass(frozen=True, slots=True)
class Ed25519:
    """An Ed25519 signature (base64) over `<timestamp>|<body>`, made with the provider's
    private key; the keys configured are its public keys (base64, 32 bytes)."""

    header: str
    timestamp_header: str
    signs_url: bool = False
    signs_time: bool = True
    max_age_seconds: float = 300.0  # what Telnyx's SDKs accept either way

    def key(self, text: str) -> bytes:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except binascii.Error:
            raise ValueError("not base64") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
        if raw[:31] + bytes([raw[31] & 0x7F]) in SMALL_ORDER_POINTS:
            # With such a key, a forged signature verifies for about one timestamp in eight.
            raise ValueError("a point of small order: no one's public key")
        return raw

    def verify(self, request: Signed, keys: Sequence[bytes], max_age: float) -> None:
        value = _header(request, self.header)
        timestamp = _header(request, self.timestamp_header)
        _check_age(request, timestamp, self.timestamp_header, max_age)
        try:
            signature = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise Refusal("signature_invalid", f"{self.header} is not base64", 403) from None
        message = timestamp.encode("latin-1", "replace") + b"|" + request.body
        verified = False
        for key in keys:
            try:
                Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
                verified = True
            except InvalidSignature:
                pass
        if not verified:
            raise _not_verified(self.header)


@dataclass(frozen=True, slots=True)
class JwtBodyHash:
    """A JWT bearer token (HS256 with the shared secret) whose `claim` is the SHA-256 (hex)
    of the body, and whose `iat` must fall within the replay window."""

    header: str = "authorization"
    claim: str = "payload_hash"
    signs_url: bool = False
    signs_time: bool = True
    max_age_seconds: float = 300.0
    # The answer to a callback without a token: Vonage may send one unsigned after an error
    # of its own and sends it again, signed, when answered 5xx (a 4xx loses it).
    unsigned_status: int = 401

    def key(self, text: str) -> bytes:
        return text.encode()

    def verify(self, request: Signed, keys: Sequence[bytes], max_age: float) -> None:
        scheme, _, token = _header(request, self.header, self.unsigned_status).partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(
                "signature_missing", f"{self.header} holds no bearer token", self.unsigned_status
            )
        claims: dict[str, object] | None = None
        for key in keys:
            try:
                found = jwt.decode(
                    token.strip(), key, algorithms=["HS256"],
                    options={"require": ["iat"], "verify_iat": False},
                )  # fmt: skip
            except jwt.InvalidTokenError:
                continue
            claims = claims or found
        if claims is None:
            raise _not_verified(f"the {self.header} token")
        _check_age(request, str(claims["iat"]), "the token's iat", max_age)
        sent = claims.get(self.claim)
        expected = hashlib.sha256(request.body).hexdigest().encode()
        if not isinstance(sent, str) or not hmac.compare_digest(
            expected, sent.lower().encode("ascii", "replace")
        ):
            raise Refusal("signature_invalid", f"the token's {self.claim} is not the body's", 403)


def url_variants(url: str) -> list[str]:
    """`url` as given, and with its scheme's default port added or removed: a provider may
    sign either, whatever it was configured with."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is None and default is not None:
        other = parts._replace(netloc=f"{_userinfo(parts.netloc)}{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=f"{_userinfo(parts.netloc)}{host}")
    else:
        return [url]
    return [url, urlunsplit(other)]


def _userinfo(netloc: str) -> str:
    user, at, _ = netloc.rpartition("@")
    return user + at
