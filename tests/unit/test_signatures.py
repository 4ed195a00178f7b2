"""Request signatures (connector/providers/signatures.py), checked for every provider that
declares one, with the provider's own sample signed as the provider would (tests/signing.py):
a valid signature passes, so does one made with either key during a rotation; a wrong key, an
altered body, a stale or future timestamp and a signature for another URL are 403; no
signature is 401. The URL checked is the configured public one, whatever the proxy in front
made of the Host header.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from connector.auth import Authenticator, Request
from connector.config import AuthConfig, Config, ConfigError
from connector.providers import PROVIDERS
from connector.providers.contract import Provider, Refusal
from connector.providers.signatures import (
    SMALL_ORDER_POINTS,
    Ed25519,
    Hmac,
    JwtBodyHash,
    Signed,
    url_variants,
)
from tests import signing

SIGNING = sorted(name for name, p in PROVIDERS.items() if p.signature is not None)
SIGNS_TIME = [n for n in SIGNING if getattr(PROVIDERS[n].signature, "signs_time", False)]
SIGNS_URL = [n for n in SIGNING if getattr(PROVIDERS[n].signature, "signs_url", False)]
PUBLIC_URL = "https://mms.example.com/callbacks/acme"
QUERY = "account=a1&x=%20y"
MAX_AGE = 300.0
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
OLD, NEW, STRANGER = "old-key", "new-key", "someone-else"


def authenticator(provider: Provider, *seeds: str, url: str = PUBLIC_URL) -> Authenticator:
    assert provider.signature is not None
    keys = {f"KEY_{i}": signing.key_for(provider.signature, s).config for i, s in enumerate(seeds)}
    config = AuthConfig.model_validate(
        {"signature": {"keys": [{"env": k} for k in keys], "url": url,
                       "max_age_seconds": MAX_AGE}}
    )  # fmt: skip
    return Authenticator(config, keys, f"providers.{provider.name}.auth", provider.signature)


def post(
    provider: Provider, auth: Authenticator, *, key: str = OLD, signed_at: float = NOW,
    url: str = PUBLIC_URL, body: bytes | None = None, headers: dict[str, str] | None = None,
    query: str = QUERY, sent_query: str | None = None,
) -> int | tuple[str, int]:  # fmt: skip
    """200 if the sample, signed with `key` for `url?query` at `signed_at` and then sent as
    `body` with `sent_query` at NOW, verifies; else the refusal's code and status."""
    assert provider.signature is not None
    sample = provider.sample
    sent_headers = {"content-type": sample.content_type, "host": "10.0.0.7:8080"}
    if headers is None:
        full_url = f"{url}?{query}" if query else url
        key_pair = signing.key_for(provider.signature, key)
        sent_headers = signing.signed_headers(
            provider.signature, full_url, sent_headers, sample.body, signed_at, key_pair
        )
    else:
        sent_headers |= headers
    try:
        sent = query if sent_query is None else sent_query
        auth.verify_signature(Request(sent_headers, "10.0.0.9"), body or sample.body, sent, NOW)
    except Refusal as refusal:
        return refusal.code, refusal.status
    return 200


@pytest.fixture(params=SIGNING)
def provider(request: pytest.FixtureRequest) -> Provider:
    return PROVIDERS[request.param]


def test_a_signed_sample_verifies(provider: Provider) -> None:
    assert post(provider, authenticator(provider, OLD)) == 200


def test_either_key_verifies_during_a_rotation(provider: Provider) -> None:
    auth = authenticator(provider, OLD, NEW)
    assert post(provider, auth, key=OLD) == 200
    assert post(provider, auth, key=NEW) == 200
    # Once the old key is gone, what it signs is refused.
    assert post(provider, authenticator(provider, NEW), key=OLD) == ("signature_invalid", 403)


def test_a_wrong_key_is_403(provider: Provider) -> None:
    assert post(provider, authenticator(provider, OLD, NEW), key=STRANGER) == (
        "signature_invalid",
        403,
    )


def test_an_altered_body_is_403(provider: Provider) -> None:
    altered = provider.sample.body + b"0"  # the last form value or JSON bytes changed
    assert post(provider, authenticator(provider, OLD), body=altered) == ("signature_invalid", 403)


def test_no_signature_is_401(provider: Provider) -> None:
    # ... or what makes the provider send it again, signed (Vonage: 503).
    status = getattr(provider.signature, "unsigned_status", 401)
    assert post(provider, authenticator(provider, OLD), headers={}) == ("signature_missing", status)


@pytest.mark.parametrize("name", SIGNS_TIME)
def test_a_timestamp_outside_the_window_is_403(name: str) -> None:
    provider = PROVIDERS[name]
    auth = authenticator(provider, OLD)
    assert post(provider, auth, signed_at=NOW - MAX_AGE + 5) == 200
    assert post(provider, auth, signed_at=NOW - MAX_AGE - 5) == ("signature_stale", 403)
    assert post(provider, auth, signed_at=NOW + MAX_AGE + 5) == ("signature_stale", 403)


@pytest.mark.parametrize("name", SIGNS_URL)
def test_the_public_url_is_checked_not_the_one_behind_the_proxy(name: str) -> None:
    provider = PROVIDERS[name]
    auth = authenticator(provider, OLD)
    # Signed for the public URL, received at 10.0.0.7:8080 through a proxy: verifies.
    assert post(provider, auth) == 200
    # Signed for the address behind the proxy (what reconstructing from Host would give).
    internal = "http://10.0.0.7:8080/callbacks/acme"
    assert post(provider, auth, url=internal) == ("signature_invalid", 403)
    # The query sent is part of what is signed.
    assert post(provider, auth, query="") == 200
    assert post(provider, auth, sent_query="account=a2") == ("signature_invalid", 403)


# --- the mechanisms themselves -----------------------------------------------------------


def _hmac_over_body(request: Signed) -> list[bytes]:
    return [request.body]


HMAC = Hmac("x-sig", _hmac_over_body, digest="sha256", encoding="hex", separator=",",
            signs_url=False)  # fmt: skip


def verify(mechanism: Any, headers: dict[str, str], body: bytes = b"{}", *keys: bytes) -> object:
    try:
        keys = keys or (b"k" * 32,)
        mechanism.verify(Signed(PUBLIC_URL, headers, body, NOW), list(keys), MAX_AGE)
    except Refusal as refusal:
        return refusal.code, refusal.status
    return 200


def test_hmac_accepts_any_of_several_signatures_in_one_header() -> None:
    key = signing.TestKey("k" * 32, b"k" * 32)
    good = signing.signed_headers(HMAC, PUBLIC_URL, {}, b"{}", NOW, key)
    assert verify(HMAC, good) == 200
    assert verify(HMAC, {"x-sig": f"abc, {good['x-sig']}"}) == 200
    assert verify(HMAC, {"x-sig": "abc,def"}) == ("signature_invalid", 403)
    assert verify(HMAC, {"x-sig": "a" * 5000}) == ("signature_invalid", 403)
    assert verify(HMAC, {"x-sig": "é"}) == ("signature_invalid", 403)


def test_ed25519_refuses_junk_signatures_and_times() -> None:
    mechanism = Ed25519("sig", "ts")
    key = signing.key_for(mechanism, "k")
    raw = mechanism.key(key.config)
    good = signing.signed_headers(mechanism, PUBLIC_URL, {}, b"{}", NOW, key)
    assert verify(mechanism, good, b"{}", raw) == 200
    assert verify(mechanism, {**good, "sig": "not base64!"}, b"{}", raw) == (
        "signature_invalid",
        403,
    )
    assert verify(mechanism, {**good, "ts": "yesterday"}, b"{}", raw) == ("signature_invalid", 403)
    assert verify(mechanism, {**good, "ts": "nan"}, b"{}", raw) == ("signature_stale", 403)
    assert verify(mechanism, {"sig": good["sig"]}, b"{}", raw) == ("signature_missing", 401)
    with pytest.raises(ValueError, match="32 bytes"):
        mechanism.key("AAAA")


def test_jwt_needs_the_body_hash_the_algorithm_and_a_time() -> None:
    mechanism = JwtBodyHash()
    body = b'{"a":1}'
    secret = "k" * 32

    def token(claims: dict[str, object], key: str = secret) -> dict[str, str]:
        return {"authorization": "Bearer " + jwt.encode(claims, key, algorithm="HS256")}

    good = {"iat": int(NOW), "payload_hash": hashlib.sha256(body).hexdigest()}
    assert verify(mechanism, token(good), body) == 200
    assert verify(mechanism, token({**good, "payload_hash": "00"}), body) == (
        "signature_invalid",
        403,
    )
    assert verify(mechanism, token({"payload_hash": good["payload_hash"]}), body) == (
        "signature_invalid",
        403,
    )  # no iat
    assert verify(mechanism, token({**good, "iat": int(NOW) - 3600}), body) == (
        "signature_stale",
        403,
    )
    assert verify(mechanism, token(good, key="o" * 32), body) == ("signature_invalid", 403)
    unsigned = jwt.encode(good, None, algorithm="none")
    assert verify(mechanism, {"authorization": f"Bearer {unsigned}"}, body) == (
        "signature_invalid",
        403,
    )
    assert verify(mechanism, {"authorization": "Basic abc"}, body) == ("signature_missing", 401)


def test_url_variants_add_or_drop_the_default_port() -> None:
    assert url_variants("https://h.example/p?q=1") == [
        "https://h.example/p?q=1",
        "https://h.example:443/p?q=1",
    ]
    assert url_variants("http://h.example:80/p") == ["http://h.example:80/p", "http://h.example/p"]
    assert url_variants("https://h.example:8443/p") == ["https://h.example:8443/p"]


# --- config ----------------------------------------------------------------------------------


def test_signature_keys_for_a_provider_that_does_not_sign_are_refused() -> None:
    unsigned = next(name for name, p in PROVIDERS.items() if p.signature is None)
    with pytest.raises(ConfigError, match=re.escape(f"providers.{unsigned}.auth.signature.keys")):
        from connector.config import _validated

        _validated(
            {"providers": {unsigned: {"enabled": True,
                                      "auth": {"signature": {"keys": [{"env": "K"}]}}}}},
            {}, None,
        )  # fmt: skip


def test_check_config_warns_about_a_signing_provider_without_keys(provider: Provider) -> None:
    def warned(auth: dict[str, object]) -> bool:
        config = Config.model_validate(
            {"providers": {provider.name: {"enabled": True, "auth": auth}}}
        )
        prefix = f"providers.{provider.name}.auth.signature is not set"
        return any(w.startswith(prefix) for w in config.warnings())

    assert warned({"allow_cidrs": ["203.0.113.0/24"]})
    assert not warned({"unauthenticated": True})  # no checks, on purpose: said already


def test_a_provider_that_signs_the_url_needs_it_configured(provider: Provider) -> None:
    assert provider.signature is not None
    settings = {"enabled": True, "auth": {"signature": {"keys": [{"env": "K"}]}}}
    if provider.signature.signs_url:
        with pytest.raises(ValueError, match="signs the URL"):
            Config.model_validate({"providers": {provider.name: settings}})
    else:
        Config.model_validate({"providers": {provider.name: settings}})


def test_a_key_the_mechanism_cannot_use_stops_start_up() -> None:
    config = AuthConfig.model_validate({"signature": {"keys": [{"env": "K"}]}})
    with pytest.raises(ConfigError, match=re.escape("signature.keys.0")):
        Authenticator(config, {"K": "dGVzdA=="}, "providers.x.auth", Ed25519("sig", "ts"))


def test_an_empty_key_file_stops_start_up(tmp_path) -> None:
    # An empty key would verify anything signed with an empty key (a forged Twilio callback).
    empty = tmp_path / "key"
    empty.write_text("\n")
    provider = PROVIDERS[SIGNING[0]]
    config = AuthConfig.model_validate({"signature": {"keys": [{"file": str(empty)}]}})
    with pytest.raises(ConfigError, match="is empty"):
        Authenticator(config, {}, "providers.x.auth", provider.signature)


@pytest.mark.parametrize("point", sorted(SMALL_ORDER_POINTS), ids=lambda p: p.hex()[:8])
def test_ed25519_keys_of_small_order_are_refused(point: bytes) -> None:
    mechanism = Ed25519("sig", "ts")
    for encoded in (point, point[:31] + bytes([point[31] | 0x80])):  # either sign
        with pytest.raises(ValueError, match="small order"):
            mechanism.key(base64.b64encode(encoded).decode())


def test_a_small_order_key_would_verify_a_forgery() -> None:
    # Why they are refused: with the all-zero key (order 4), R = the neutral element and S = 0
    # verify whenever the hash is a multiple of 4, one timestamp in four.
    key = Ed25519PublicKey.from_public_bytes(bytes(32))
    forged = bytes([1]) + bytes(63)
    verified = 0
    for ts in range(64):
        try:
            key.verify(forged, f"{ts}|{{}}".encode())
            verified += 1
        except InvalidSignature:
            pass
    assert verified > 0


@pytest.mark.parametrize(
    ("mechanism", "auth", "problem"),
    [
        (JwtBodyHash(), {"url": "https://h.example/cb"}, "does not sign the URL"),
        (Hmac("x", lambda r: [r.body]), {"max_age_seconds": 60}, "signs no time"),
        (JwtBodyHash(), {"basic": True}, "no auth.basic"),
    ],
)
def test_settings_the_mechanism_would_ignore_are_config_errors(
    mechanism: Any, auth: dict[str, Any], problem: str
) -> None:
    from connector.config import _signature_problems

    signature = {"keys": [{"env": "K"}], **{k: v for k, v in auth.items() if k != "basic"}}
    config: dict[str, Any] = {"signature": signature}
    if "basic" in auth:
        config["basic"] = {"username": "u", "password": {"env": "P"}}
    found = _signature_problems(mechanism, AuthConfig.model_validate(config))
    assert any(problem in msg for _key, msg in found), found
