"""Per-provider authentication: HTTP Basic, a shared token (header or path), a source-IP allowlist,
and the provider's own request signature (connector/providers/signatures.py).

Secrets are resolved once when the app is built; every comparison is constant-time; a failure
says what failed but never echoes what was sent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from connector.config import AuthConfig, ConfigError
from connector.providers.contract import Limits, Refusal
from connector.providers.signatures import Signature, Signed

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an HTTP request authentication looks at."""

    headers: Mapping[str, str]  # lower-cased names
    peer: str | None
    path_token: str | None = None


class Authenticator:
    def __init__(
        self,
        config: AuthConfig,
        env: Mapping[str, str],
        key: str,
        signature: Signature | None = None,
        max_elements: int = Limits().max_elements,  # the route's budget, for what is signed
    ) -> None:
        self._basic: bytes | None = None
        if config.basic:
            password = config.basic.password.resolve(dict(env), f"{key}.basic.password")
            self._basic = f"{config.basic.username}:{password}".encode()
        self._token_header: str | None = None
        self._token: bytes | None = None
        if config.token:
            self._token = config.token.value.resolve(dict(env), f"{key}.token.value").encode()
            self._token_header = config.token.header.lower() if config.token.header else None
        self._allow: list[Network] = list(config.allow_cidrs)
        self._proxies: list[Network] = list(config.trusted_proxies)
        self._signature: Signature | None = None
        self._signature_keys: list[bytes] = []
        self._signed_url, self._max_age = "", 0.0
        self._max_elements = max_elements
        if config.signature is not None and signature is not None:
            self._signature = signature
            for i, secret in enumerate(config.signature.keys):
                where = f"{key}.signature.keys.{i}"
                try:
                    self._signature_keys.append(signature.key(secret.resolve(dict(env), where)))
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            self._signed_url = config.signature.url or ""
            self._max_age = config.signature.max_age_seconds or signature.max_age_seconds

    @property
    def token_in_path(self) -> bool:
        return self._token is not None and self._token_header is None

    def check(self, request: Request) -> None:
        """Raise a 401/403 `Refusal` unless the request passes every configured check."""
        if self._allow:
            client = self.client_ip(request)
            if client is None or not any(client in net for net in self._allow):
                raise Refusal("forbidden", f"source address {client} is not allowed", 403)
        if self._basic is not None and not _same(self._basic, _basic_credentials(request)):
            raise Refusal("unauthorized", "HTTP Basic credentials missing or wrong", 401)
        if self._token is not None:
            sent = (
                request.headers.get(self._token_header)
                if self._token_header
                else request.path_token
            )
            # Header values arrive as latin-1 text: encoding them back gives the bytes as sent,
            # so a UTF-8 token matches. A path token was percent-decoded as UTF-8.
            raw = _bytes(sent, "latin-1" if self._token_header else "utf-8")
            if not _same(self._token, raw):
                raise Refusal("unauthorized", "callback token missing or wrong", 401)

    @property
    def verifies_signature(self) -> bool:
        return self._signature is not None

    def verify_signature(self, request: Request, body: bytes, query: str, now: float) -> None:
        """Raise a 401/403 `Refusal` unless the body is signed with a configured key (when
        the provider signs and keys are configured); `query` is the raw query string sent."""
        if self._signature is None:
            return
        url = self._signed_url
        if url and self.token_in_path and request.path_token:
            url += "/" + request.path_token
        if url and query:
            url += "?" + query
        signed = Signed(url, request.headers, body, now, self._max_elements)
        self._signature.verify(signed, self._signature_keys, self._max_age)

    def client_ip(self, request: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The peer, or, behind trusted proxies, the nearest X-Forwarded-For hop not a proxy.

        Hops are read right to left: the left ones are whatever the client chose to send.
        """
        peer = _ip(request.peer)
        if peer is None or not any(peer in net for net in self._proxies):
            return peer
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                return None
            if not any(ip in net for net in self._proxies):
                return ip
        return peer


def _basic_credentials(request: Request) -> bytes | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _bytes(text: str | None, encoding: str) -> bytes | None:
    try:
        return text.encode(encoding) if text else None
    except UnicodeEncodeError:
        return None  # no bytes on the wire give this text, so it matches nothing


def _same(expected: bytes, sent: bytes | None) -> bool:
    # Compare even when nothing was sent, so timing does not reveal which check failed.
    return hmac.compare_digest(expected, sent or b"") and sent is not None


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address; IPv4-mapped IPv6 (`::ffff:203.0.113.5`, what a dual-stack socket reports
    for IPv4 peers) as the IPv4 address it is, so IPv4 allowlists and proxies match it."""
    try:
        ip = ipaddress.ip_address(text) if text else None
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
