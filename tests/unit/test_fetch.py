"""Safe media fetching against a local HTTP server started here (loopback, allow_private)."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time
from dataclasses import replace

import pytest

from connector.config import MediaFetchConfig
from connector.fetch import (
    BAD_SCHEME,
    CONNECTION_ERROR,
    DNS_ERROR,
    HOST_NOT_ALLOWED,
    REFUSED_ADDRESS,
    TIMEOUT,
    TOO_LARGE,
    TOO_MANY_REDIRECTS,
    Failed,
    Fetched,
    Fetcher,
    FetchPolicy,
    Outcome,
    address_refusal,
    host_allowed,
    sniff_content_type,
    status_failure,
)
from tests.media_host import GOOD_AUTH, JPEG, PASSWORD, PNG, USER

LOCAL = FetchPolicy(allow_private=True, timeout_seconds=2.0, max_bytes=2000, max_redirects=3)
WITH_AUTH = replace(LOCAL, username=USER, password=PASSWORD)


def fetch(
    url: str, policy: FetchPolicy = LOCAL, names: dict[str, list[str]] | None = None
) -> Outcome:
    """One fetch; `names` stands in for DNS (host -> addresses), else the system resolver."""

    async def resolve(host: str, _port: int) -> list[str]:
        assert names is not None
        if host not in names:
            raise OSError(f"{host}: unknown")
        return names[host]

    async def run() -> Outcome:
        fetcher = Fetcher(policy, resolve=resolve) if names is not None else Fetcher(policy)
        try:
            return await fetcher.fetch(url)
        finally:
            await fetcher.aclose()

    return asyncio.run(run())


def test_content_with_credentials_sniffed_hashed_and_sized(media_host) -> None:
    outcome = fetch(f"http://127.0.0.1:{media_host.port}/photo.jpg", WITH_AUTH)
    assert isinstance(outcome, Fetched)
    assert outcome.content == JPEG
    assert outcome.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert outcome.size == len(JPEG)
    # The header said text/plain; the bytes are a JPEG.
    assert outcome.content_type == "image/jpeg"


def test_401_without_credentials_is_final(media_host) -> None:
    assert fetch(f"http://127.0.0.1:{media_host.port}/photo.jpg") == Failed("http_401", False)


def test_404_is_final(media_host) -> None:
    assert fetch(f"http://127.0.0.1:{media_host.port}/nothing-here") == Failed("http_404", False)


def test_500_is_retryable_then_the_content_arrives(media_host) -> None:
    url = f"http://127.0.0.1:{media_host.port}/flaky"
    assert fetch(url) == Failed("http_500", True)
    second = fetch(url)
    assert isinstance(second, Fetched)
    assert (second.content, second.content_type) == (PNG, "image/png")


def test_slow_host_times_out_as_a_whole(media_host) -> None:
    started = time.monotonic()
    outcome = fetch(f"http://127.0.0.1:{media_host.port}/slow", replace(LOCAL, timeout_seconds=1))
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == (TIMEOUT, True)
    assert time.monotonic() - started < 2


def test_declared_too_large_refused_before_reading(media_host) -> None:
    outcome = fetch(f"http://127.0.0.1:{media_host.port}/big-declared")
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == (TOO_LARGE, False)
    assert "Content-Length 5000" in outcome.detail


def test_streamed_too_large_stopped_at_the_cap(media_host) -> None:
    outcome = fetch(f"http://127.0.0.1:{media_host.port}/big-streamed")
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == (TOO_LARGE, False)
    assert "more than 2000 bytes" in outcome.detail


def test_redirect_to_metadata_address_refused_without_connecting(media_host) -> None:
    url = f"http://127.0.0.1:{media_host.port}/redirect?to=http://169.254.169.254/latest/meta-data/"
    outcome = fetch(url)
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == (REFUSED_ADDRESS, False)
    assert "metadata" in outcome.detail


def test_redirect_to_a_name_resolving_private_refused(media_host) -> None:
    # The first hop's name resolves to loopback (allowed here); the redirect's to a private
    # and a metadata address: every address of a name must pass.
    names = {"media.test": ["127.0.0.1"], "evil.test": ["127.0.0.1", "169.254.169.254"]}
    url = f"http://media.test:{media_host.port}/redirect?to=http://evil.test:{media_host.port}/photo.jpg"
    outcome = fetch(url, names=names)
    assert isinstance(outcome, Failed) and outcome.reason == REFUSED_ADDRESS
    assert [path for path, _, _ in media_host.seen] == [url.split(str(media_host.port), 1)[1]]


def test_private_addresses_refused_unless_allowed(media_host) -> None:
    outcome = fetch(
        f"http://127.0.0.1:{media_host.port}/photo.jpg", replace(LOCAL, allow_private=False)
    )
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.detail) == (
        REFUSED_ADDRESS,
        "127.0.0.1 is loopback (127.0.0.1)",
    )
    assert media_host.seen == []  # never connected


def test_credentials_never_follow_a_redirect_to_another_host(media_host) -> None:
    names = {"media.test": ["127.0.0.1"], "cdn.test": ["127.0.0.1"]}
    port = media_host.port
    url = f"http://media.test:{port}/redirect?to=http://cdn.test:{port}/status/200"
    outcome = fetch(url, WITH_AUTH, names)
    assert isinstance(outcome, Fetched)
    first, second = media_host.seen
    assert (first[1], first[2]) == (f"media.test:{port}", GOOD_AUTH)
    assert (second[1], second[2]) == (f"cdn.test:{port}", None)


def test_an_authorization_header_goes_to_the_media_origin_only(media_host) -> None:
    # media_fetch.authorization (Infobip's `App <key>`): sent as Basic credentials are.
    names = {"media.test": ["127.0.0.1"], "cdn.test": ["127.0.0.1"]}
    port = media_host.port
    url = f"http://media.test:{port}/redirect?to=http://cdn.test:{port}/status/200"
    outcome = fetch(url, replace(LOCAL, authorization="App 003026-k3y"), names)
    assert isinstance(outcome, Fetched)
    first, second = media_host.seen
    assert (first[1], first[2]) == (f"media.test:{port}", "App 003026-k3y")
    assert (second[1], second[2]) == (f"cdn.test:{port}", None)


def test_same_host_redirect_keeps_credentials(media_host) -> None:
    port = media_host.port
    outcome = fetch(f"http://127.0.0.1:{port}/redirect?to=/photo.jpg", WITH_AUTH)
    assert isinstance(outcome, Fetched) and outcome.content == JPEG
    assert outcome.url == f"http://127.0.0.1:{port}/photo.jpg"


def test_connects_to_the_checked_address_without_a_second_lookup(media_host) -> None:
    # media.test exists only in this resolver: had the connection looked the name up again
    # (the system resolver), it would have failed.
    calls: list[str] = []

    async def resolve(host: str, _port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    async def run() -> Outcome:
        fetcher = Fetcher(WITH_AUTH, resolve=resolve)
        try:
            return await fetcher.fetch(f"http://media.test:{media_host.port}/photo.jpg")
        finally:
            await fetcher.aclose()

    outcome = asyncio.run(run())
    assert isinstance(outcome, Fetched) and outcome.content == JPEG
    assert calls == ["media.test"]


def test_too_many_redirects(media_host) -> None:
    outcome = fetch(f"http://127.0.0.1:{media_host.port}/loop")
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == (TOO_MANY_REDIRECTS, False)
    assert len(media_host.seen) == LOCAL.max_redirects + 1


def test_hosts_outside_the_allowed_list_refused(media_host) -> None:
    policy = replace(LOCAL, allowed_hosts=("*.bandwidth.com",))
    outcome = fetch(f"http://127.0.0.1:{media_host.port}/photo.jpg", policy)
    assert isinstance(outcome, Failed) and outcome.reason == HOST_NOT_ALLOWED
    assert media_host.seen == []


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x.jpg", "file:///etc/passwd", "gopher://127.0.0.1:70/_x"]
)
def test_other_schemes_refused(url: str) -> None:
    outcome = fetch(url)
    assert isinstance(outcome, Failed)
    assert (outcome.reason, outcome.retryable) == (BAD_SCHEME, False)


def test_unresolvable_and_unreachable_hosts_are_retryable(media_host) -> None:
    unresolved = fetch("http://nowhere.test/x", names={})
    assert isinstance(unresolved, Failed) and (unresolved.reason, unresolved.retryable) == (
        DNS_ERROR,
        True,
    )
    media_host.server_close()  # nothing listens on the port any more
    closed = fetch(f"http://127.0.0.1:{media_host.port}/photo.jpg")
    assert isinstance(closed, Failed)
    assert (closed.reason, closed.retryable) == (CONNECTION_ERROR, True)


@pytest.mark.parametrize(
    ("address", "allow_private", "refusal"),
    [
        ("93.184.216.34", False, None),
        ("2606:2800:220:1:248:1893:25c8:1946", False, None),
        ("127.0.0.1", False, "loopback"),
        ("127.0.0.1", True, None),
        ("::1", False, "loopback"),
        ("::1", True, None),
        ("10.1.2.3", False, "private"),
        ("172.16.0.1", False, "private"),
        ("192.168.1.1", False, "private"),
        ("192.168.1.1", True, None),
        ("fd12:3456::1", False, "private"),
        ("100.64.0.1", False, "not-global"),
        ("192.0.2.1", False, "private"),  # documentation range
        ("169.254.169.254", True, "metadata"),
        ("169.254.170.2", True, "metadata"),
        ("fd00:ec2::254", True, "metadata"),
        ("100.100.100.200", True, "metadata"),
        ("169.254.1.1", True, "link-local"),
        ("fe80::1", True, "link-local"),
        ("0.0.0.0", True, "unspecified"),
        ("::", True, "unspecified"),
        ("224.0.0.1", True, "multicast"),
        ("ff02::1", True, "multicast"),
        ("255.255.255.255", True, "broadcast"),
        ("::ffff:127.0.0.1", False, "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", True, "metadata"),
        ("64:ff9b::a9fe:a9fe", True, "metadata"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False, "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_address_refusals(address: str, allow_private: bool, refusal: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address), allow_private) == refusal


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("mms.bandwidth.com", (), True),
        ("mms.bandwidth.com", ("*.bandwidth.com",), True),
        ("MMS.Bandwidth.com.", ("*.bandwidth.com",), True),
        ("bandwidth.com", ("*.bandwidth.com",), False),
        ("evilbandwidth.com", ("*.bandwidth.com",), False),
        ("messaging.bandwidth.com", ("messaging.bandwidth.com",), True),
        ("other.bandwidth.com", ("messaging.bandwidth.com",), False),
    ],
)
def test_allowed_hosts(host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, allowed) is ok


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (200, None),
        (401, Failed("http_401", False)),
        (403, Failed("http_403", False)),
        (404, Failed("http_404", False)),
        (410, Failed("http_410", False)),
        (429, Failed("http_429", True)),
        (500, Failed("http_500", True)),
        (503, Failed("http_503", True)),
        (304, Failed("http_304", False)),
    ],
)
def test_status_outcomes(status: int, failure: Failed | None) -> None:
    assert status_failure(status) == failure


@pytest.mark.parametrize(
    ("head", "header", "name", "expected"),
    [
        (PNG, "image/jpeg", "a.jpg", "image/png"),  # magic bytes first
        (b"BEGIN:VCARD\r\n", "text/vcard; charset=utf-8", "x", "text/vcard"),  # then the header
        (b"hello", "application/octet-stream", "note.txt", "text/plain"),  # then the extension
        (b"hello", None, "clip.mp4", "video/mp4"),
        (b"hello", "application/octet-stream", "noext", "application/octet-stream"),
        (b"hello", "not a type <script>", None, None),
        (b"", None, None, None),
    ],
)
def test_content_type_sniffing(
    head: bytes, header: str | None, name: str | None, expected: str | None
) -> None:
    assert sniff_content_type(head, header, name) == expected


def test_policy_from_config_resolves_the_password() -> None:
    settings = MediaFetchConfig.model_validate(
        {
            "username": USER,
            "password": {"env": "BW_MEDIA_PASSWORD"},
            "allowed_hosts": ["*.Bandwidth.com"],
        }
    )
    policy = FetchPolicy.from_config(
        settings, {"BW_MEDIA_PASSWORD": PASSWORD}, "providers.x.media_fetch"
    )
    assert (policy.username, policy.password, policy.allowed_hosts) == (
        USER,
        PASSWORD,
        ("*.bandwidth.com",),
    )
    assert PASSWORD not in repr(policy)
    header = MediaFetchConfig.model_validate({"authorization": {"env": "IB_MEDIA_AUTH"}})
    policy = FetchPolicy.from_config(header, {"IB_MEDIA_AUTH": "App s3cr3t"}, "x.media_fetch")
    assert policy.authorization == "App s3cr3t"
    assert "s3cr3t" not in repr(policy)
