"""Fetching provider-hosted media safely, for the mirror.

A media URL comes from a provider's callback, so it is untrusted input pointing our process at
the network: only http(s); every hop's host resolved here and refused when any of its
addresses is private, loopback, link-local, multicast, unspecified, reserved or a cloud
metadata address (unless the provider's `allow_private` permits private and loopback ones);
hosts outside `allowed_hosts` refused; redirects followed by hand, at most `max_redirects`,
each hop checked again; the body streamed under `max_bytes` (refused early on Content-Length)
and hashed while it streams; the whole fetch bounded by `timeout_seconds`.

No DNS rebinding between the check and the connection: the TCP connection goes to the address
that was checked, not to a second lookup. httpx's transport takes no resolver, so its
connection pool gets a network backend (`_PinnedBackend`) that connects only to the address
pinned for the request's host in a context variable, set by `Fetcher` for the hop it checked
(and refuses any host nothing was pinned for). TLS still verifies the certificate against the
host name. A pooled connection is reused only for its own host, opened to a checked address of
it under the same provider's policy (one client per provider).

Basic credentials go only to the URL's original origin (scheme, host, port): a redirect to
another host never carries them. Environment proxies are ignored (`trust_env=False`): a proxy
would make the connection somewhere other than the checked address.

Content type: magic bytes first (`filetype`), then the response's Content-Type, then the name's
extension. `filetype` needs no system libmagic, and on the MMS types we tried it was never wrong,
where `puremagic` 1.30 (the last release for Python 3.11) called HEIC and AVIF `video/mp4`
and found no type for AMR, M4A or MP3; `filetype` misses 3GPP, which then comes from the header.
Per call on a JPEG head: filetype 1.5 us, puremagic 370 us.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import mimetypes
import re
import socket
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import filetype
import httpcore
import httpx

from connector.config import MediaFetchConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Reason codes (metrics labels and the `reason` of unavailable media).
BAD_URL = "bad_url"
BAD_SCHEME = "bad_scheme"
HOST_NOT_ALLOWED = "host_not_allowed"
REFUSED_ADDRESS = "refused_address"
DNS_ERROR = "dns_error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
TOO_LARGE = "too_large"
TOO_MANY_REDIRECTS = "too_many_redirects"
BAD_REDIRECT = "bad_redirect"
# The content is not what the provider's callback announced (its size or SHA-256).
CONTENT_MISMATCH = "content_mismatch"

# Cloud metadata services: AWS/GCP/Azure/OpenStack (in link-local, refused anyway), the AWS
# IPv6 endpoint (inside fc00::/7, which allow_private would let through), Alibaba's (inside
# 100.64.0.0/10, likewise) and ECS task metadata. Never fetched, whatever the policy says.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Worth asking again later: the host is busy, down or throttling us.
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_OCTET_STREAM = "application/octet-stream"
# filetype looks at most at the first 8 KiB (its _NUM_SIGNATURE_BYTES).
SNIFF_BYTES = 8192
# The built-in extension table only: /etc/mime.types differs between machines.
_EXTENSIONS = mimetypes.MimeTypes(filenames=())


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """A provider's fetch settings, its password resolved."""

    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    timeout_seconds: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 3
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    authorization: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(
        cls, settings: MediaFetchConfig, env: Mapping[str, str], key: str
    ) -> FetchPolicy:
        password = settings.password.resolve(env, f"{key}.password") if settings.password else None
        return cls(
            allowed_hosts=tuple(settings.allowed_hosts),
            allow_private=settings.allow_private,
            timeout_seconds=settings.timeout_seconds,
            max_bytes=settings.max_bytes,
            max_redirects=settings.max_redirects,
            username=settings.username,
            password=password,
            authorization=settings.authorization.resolve(env, f"{key}.authorization")
            if settings.authorization
            else None,
        )


@dataclass(frozen=True, slots=True)
class Fetched:
    content: bytes
    content_type: str | None
    sha256: str
    size: int
    url: str  # where the content came from, after redirects


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    retryable: bool
    detail: str = ""


Outcome = Fetched | Failed
Resolver = Callable[[str, int], Awaitable[list[str]]]


def address_refusal(ip: IPAddress, allow_private: bool) -> str | None:
    """Why the mirror must not connect to `ip` (None: it may)."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 host: judge that one.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded, allow_private)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    for name in ("unspecified", "multicast", "link_local"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if ip == _BROADCAST:
        return "broadcast"
    if allow_private or ip.is_global:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_private:
        return "private"
    return "not-global"  # shared address space (100.64.0.0/10), documentation ranges ...


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Whether `host` is one of `allowed_hosts` (names, or `*.suffix` for any subdomain);
    an empty list allows every host."""
    allowed = list(allowed_hosts)
    host = host.lower().rstrip(".")
    return not allowed or any(
        host.endswith(entry[1:]) if entry.startswith("*.") else host == entry for entry in allowed
    )


def status_failure(status: int) -> Failed | None:
    """What an HTTP status means for the fetch (None: content follows)."""
    if 200 <= status < 300:
        return None
    reason = f"http_{status}"
    return Failed(reason, retryable=status >= 500 or status in _RETRYABLE_STATUS)


def sniff_content_type(head: bytes, header: str | None, name: str | None) -> str | None:
    """The content's type: from its magic bytes, else the Content-Type header, else the name's
    extension; a bare application/octet-stream header only when nothing says more."""
    kind = filetype.guess(head[:SNIFF_BYTES]) if head else None
    if kind is not None:
        return str(kind.mime)
    declared = (header or "").split(";", 1)[0].strip().lower()
    if not _MIME.match(declared):
        declared = ""
    if declared and declared != _OCTET_STREAM:
        return declared
    guessed = _EXTENSIONS.guess_type(name, strict=False)[0] if name else None
    return guessed or declared or None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# (host, address) the current request may connect to: set by Fetcher for each checked hop.
_PINNED: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "pinned_address", default=None
)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host only to the address checked for it (see the module's docstring)."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pinned = _PINNED.get()
        if pinned is None or pinned[0] != host:
            raise httpcore.ConnectError(f"{host}: no checked address for this host")
        return await self._backend.connect_tcp(
            pinned[1], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, verify: Any, max_connections: int) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx's transport takes no network backend: its pool is replaced by the same pool
        # with ours (httpx 0.28's AsyncHTTPTransport keeps it in `_pool`; pinned in pyproject).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(),
        )


class Fetcher:
    """Fetches one provider's media under its policy; one per provider (its own pool)."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolve: Resolver = system_resolve,
        verify: Any = True,
        max_connections: int = 64,
    ) -> None:
        self.policy = policy
        self._resolve = resolve
        self._client = httpx.AsyncClient(
            transport=_PinnedTransport(verify, max_connections),
            timeout=policy.timeout_seconds,
            follow_redirects=False,  # followed by hand, each hop checked
            trust_env=False,
            # Sizes are counted after decoding, but an uncompressed body is what we store.
            headers={"accept-encoding": "identity", "user-agent": "mms-connector-mirror"},
        )
        self._auth: httpx.Auth | None = None
        if policy.username is not None:
            self._auth = httpx.BasicAuth(policy.username, policy.password or "")
        elif policy.authorization is not None:
            self._auth = _HeaderAuth(policy.authorization)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> Outcome:
        """The content at `url`, or why not (retryable or final); never raises for the URL,
        the network or the server."""
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                return await self._follow(url)
        except TimeoutError:
            return Failed(TIMEOUT, True, f"not complete within {self.policy.timeout_seconds} s")

    async def _follow(self, url: str) -> Outcome:
        try:
            current = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            return Failed(BAD_URL, False, str(exc))
        origin = _origin(current)
        for _hop in range(self.policy.max_redirects + 1):
            checked = await self._check(current)
            if isinstance(checked, Failed):
                return checked
            auth = self._auth if _origin(current) == origin else None
            token = _PINNED.set((current.raw_host.decode("ascii"), checked))
            try:
                async with self._client.stream("GET", current, auth=auth) as response:
                    if response.status_code in _REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            return Failed(BAD_REDIRECT, False, "a redirect without Location")
                        try:
                            current = current.join(location)
                        except httpx.InvalidURL as exc:
                            return Failed(BAD_REDIRECT, False, str(exc))
                        continue
                    if failure := status_failure(response.status_code):
                        return failure
                    return await self._read(response, current)
            except httpx.TimeoutException:
                return Failed(TIMEOUT, True, "the host did not answer in time")
            except (httpx.TransportError, httpx.DecodingError) as exc:
                return Failed(CONNECTION_ERROR, True, type(exc).__name__)
            finally:
                _PINNED.reset(token)
        return Failed(TOO_MANY_REDIRECTS, False, f"more than {self.policy.max_redirects}")

    async def _check(self, url: httpx.URL) -> str | Failed:
        """The address to connect to for this hop, or why the hop is refused."""
        if url.scheme not in ("http", "https"):
            return Failed(BAD_SCHEME, False, f"scheme {url.scheme!r}")
        host = url.raw_host.decode("ascii")
        if not host:
            return Failed(BAD_URL, False, "no host")
        if not host_allowed(host, self.policy.allowed_hosts):
            return Failed(HOST_NOT_ALLOWED, False, host)
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = await self._resolve(host, url.port or _DEFAULT_PORTS[url.scheme])
            except (OSError, UnicodeError) as exc:
                return Failed(DNS_ERROR, True, f"{host}: {exc}")
        if not addresses:
            return Failed(DNS_ERROR, True, f"{host}: no address")
        # Every address must pass: a name that also resolves somewhere private is refused.
        for address in addresses:
            refusal = address_refusal(ipaddress.ip_address(address), self.policy.allow_private)
            if refusal is not None:
                return Failed(REFUSED_ADDRESS, False, f"{host} is {refusal} ({address})")
        return addresses[0]

    async def _read(self, response: httpx.Response, url: httpx.URL) -> Outcome:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return Failed(TOO_LARGE, False, f"Content-Length {declared} > {limit}")
        digest = hashlib.sha256()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            if len(body) + len(chunk) > limit:
                return Failed(TOO_LARGE, False, f"more than {limit} bytes")
            digest.update(chunk)
            body += chunk
        content = bytes(body)
        name = url.path.rsplit("/", 1)[-1] or None
        return Fetched(
            content=content,
            content_type=sniff_content_type(content, response.headers.get("content-type"), name),
            sha256=digest.hexdigest(),
            size=len(content),
            url=str(url),
        )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme)


class _HeaderAuth(httpx.Auth):
    """A fixed Authorization header (`media_fetch.authorization`, e.g. Infobip's `App <key>`),
    sent where Basic credentials would be: to the media URL's own origin only."""

    def __init__(self, value: str) -> None:
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request
