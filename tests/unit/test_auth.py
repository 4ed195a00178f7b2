"""Per-provider authentication: HTTP Basic, shared token (header or path), source-IP allowlist."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from connector.auth import Authenticator, Request
from connector.config import AuthConfig, ConfigError
from connector.providers.contract import Refusal

ENV = {"BASIC_PW": "s3cr3t:with:colons", "CB_TOKEN": "tok-123"}
KEY = "providers.bandwidth-v2.auth"


def make(auth: dict[str, Any], env: Mapping[str, str] = ENV) -> Authenticator:
    return Authenticator(AuthConfig.model_validate(auth), env, KEY)


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def outcome(authenticator: Authenticator, request: Request) -> int:
    """200 if the request passes, else the refusal's status."""
    try:
        authenticator.check(request)
    except Refusal as refusal:
        assert refusal.code in ("unauthorized", "forbidden")
        return refusal.status
    return 200


BASIC = {"basic": {"username": "bw", "password": {"env": "BASIC_PW"}}}
TOKEN_HEADER = {"token": {"header": "X-Callback-Token", "value": {"env": "CB_TOKEN"}}}
TOKEN_PATH = {"token": {"in_path": True, "value": {"env": "CB_TOKEN"}}}
ALLOW = {"allow_cidrs": ["203.0.113.0/24", "2001:db8::/32"]}
ALLOW_BEHIND_PROXY = {**ALLOW, "trusted_proxies": ["10.0.0.0/8"]}

PEER = "198.51.100.7"  # a client outside every allowlist below


@pytest.mark.parametrize(
    ("auth", "headers", "peer", "path_token", "expected"),
    [
        # HTTP Basic
        (BASIC, {"authorization": basic_header("bw", ENV["BASIC_PW"])}, PEER, None, 200),
        (BASIC, {"authorization": "basic " + basic_header("bw", ENV["BASIC_PW"])[6:]}, PEER,
         None, 200),  # the scheme is case-insensitive
        (BASIC, {"authorization": basic_header("bw", "wrong")}, PEER, None, 401),
        (BASIC, {"authorization": basic_header("someone", ENV["BASIC_PW"])}, PEER, None, 401),
        (BASIC, {"authorization": basic_header("bw", ENV["BASIC_PW"] + "x")}, PEER, None, 401),
        (BASIC, {}, PEER, None, 401),
        (BASIC, {"authorization": "Basic"}, PEER, None, 401),
        (BASIC, {"authorization": "Basic !!!not-base64!!!"}, PEER, None, 401),
        # right credentials, but not strictly base64 (a lax decoder would skip the junk)
        (BASIC, {"authorization": basic_header("bw", ENV["BASIC_PW"]) + "*"}, PEER, None, 401),
        (BASIC, {"authorization": basic_header("bw", ENV["BASIC_PW"])[:-1]}, PEER, None, 401),
        (BASIC, {"authorization": "Basic ÿÿÿÿ"}, PEER, None, 401),  # not ASCII
        (BASIC, {"authorization": "Bearer " + ENV["BASIC_PW"]}, PEER, None, 401),
        # the token in the path does not stand in for Basic
        (BASIC, {}, PEER, ENV["BASIC_PW"], 401),
        # token in a header
        (TOKEN_HEADER, {"x-callback-token": "tok-123"}, PEER, None, 200),
        (TOKEN_HEADER, {"x-callback-token": "tok-124"}, PEER, None, 401),
        (TOKEN_HEADER, {"x-callback-token": "tok-1234"}, PEER, None, 401),
        (TOKEN_HEADER, {"x-callback-token": ""}, PEER, None, 401),
        (TOKEN_HEADER, {}, PEER, None, 401),
        (TOKEN_HEADER, {"authorization": "tok-123"}, PEER, None, 401),  # wrong header
        (TOKEN_HEADER, {}, PEER, "tok-123", 401),  # header mode ignores the path
        # token in the path
        (TOKEN_PATH, {}, PEER, "tok-123", 200),
        (TOKEN_PATH, {}, PEER, "tok-12", 401),
        (TOKEN_PATH, {}, PEER, None, 401),
        (TOKEN_PATH, {"x-callback-token": "tok-123"}, PEER, None, 401),
        # allowlist, peer is the client
        (ALLOW, {}, "203.0.113.9", None, 200),
        (ALLOW, {}, "2001:db8::42", None, 200),
        (ALLOW, {}, PEER, None, 403),
        (ALLOW, {}, None, None, 403),
        (ALLOW, {}, "not-an-ip", None, 403),
        # spoofed X-Forwarded-For from an untrusted peer is ignored, whichever way it points
        (ALLOW, {"x-forwarded-for": "203.0.113.9"}, PEER, None, 403),
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": "203.0.113.9"}, PEER, None, 403),
        (ALLOW, {"x-forwarded-for": PEER}, "203.0.113.9", None, 200),
        # behind trusted proxies: the nearest hop that is not a proxy is the client
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": "203.0.113.9"}, "10.1.2.3", None, 200),
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": PEER}, "10.1.2.3", None, 403),
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": "203.0.113.9, 10.9.9.9"}, "10.1.2.3", None,
         200),  # two proxies
        # a client claiming an allowed address in front of its real one gains nothing
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": f"203.0.113.9, {PEER}"}, "10.1.2.3", None,
         403),
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": f"{PEER}, 203.0.113.9"}, "10.1.2.3", None,
         200),
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": "garbage"}, "10.1.2.3", None, 403),
        (ALLOW_BEHIND_PROXY, {"x-forwarded-for": "203.0.113.9, garbage"}, "10.1.2.3", None,
         403),
        (ALLOW_BEHIND_PROXY, {}, "10.1.2.3", None, 403),  # a proxy is not a client
        # everything together: each check must pass
        ({**BASIC, **TOKEN_HEADER, **ALLOW},
         {"authorization": basic_header("bw", ENV["BASIC_PW"]), "x-callback-token": "tok-123"},
         "203.0.113.1", None, 200),
        ({**BASIC, **TOKEN_HEADER, **ALLOW},
         {"authorization": basic_header("bw", ENV["BASIC_PW"]), "x-callback-token": "tok-123"},
         PEER, None, 403),
        ({**BASIC, **TOKEN_HEADER, **ALLOW},
         {"authorization": basic_header("bw", ENV["BASIC_PW"]), "x-callback-token": "nope"},
         "203.0.113.1", None, 401),
        ({**BASIC, **TOKEN_HEADER, **ALLOW}, {"x-callback-token": "tok-123"},
         "203.0.113.1", None, 401),
        # no authentication configured: everything passes
        ({}, {}, None, None, 200),
    ],
)  # fmt: skip
def test_check(
    auth: dict[str, Any],
    headers: dict[str, str],
    peer: str | None,
    path_token: str | None,
    expected: int,
) -> None:
    assert outcome(make(auth), Request(headers, peer, path_token)) == expected


@pytest.mark.parametrize(
    ("peer", "xff", "client"),
    [
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # untrusted peer: XFF ignored
        ("10.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "1.1.1.1, 203.0.113.9, 10.2.2.2, 10.3.3.3", "203.0.113.9"),
        ("10.0.0.1", " 203.0.113.9 ,10.2.2.2 ", "203.0.113.9"),
        ("10.0.0.1", "10.2.2.2, 10.3.3.3", "10.0.0.1"),  # all proxies: the peer
        ("10.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_reads_forwarded_hops_right_to_left(peer: str, xff: str, client: str) -> None:
    authenticator = make(ALLOW_BEHIND_PROXY)
    found = authenticator.client_ip(Request({"x-forwarded-for": xff}, peer))
    assert str(found) == client


def test_refusals_never_echo_what_was_sent() -> None:
    authenticator = make({**BASIC, **TOKEN_HEADER})
    sent = "Basic " + base64.b64encode(b"bw:guessed-password").decode()
    for headers in (
        {"authorization": sent},
        {"authorization": basic_header("bw", ENV["BASIC_PW"]), "x-callback-token": "guess-xyz"},
    ):
        with pytest.raises(Refusal) as info:
            authenticator.check(Request(headers, PEER))
        text = f"{info.value} {info.value.detail}"
        for secret in ("guessed-password", "guess-xyz", ENV["BASIC_PW"], ENV["CB_TOKEN"], sent):
            assert secret not in text


def test_token_in_path_flag() -> None:
    assert make(TOKEN_PATH).token_in_path
    assert not make(TOKEN_HEADER).token_in_path
    assert not make(BASIC).token_in_path


def test_secrets_from_files_are_stripped(tmp_path: Path) -> None:
    password, token = tmp_path / "password", tmp_path / "token"
    password.write_text("from-a-file\n")
    token.write_text("  file-token \n")
    authenticator = make(
        {
            "basic": {"username": "u", "password": {"file": str(password)}},
            "token": {"header": "X-Token", "value": {"file": str(token)}},
        },
        env={},
    )
    good = {"authorization": basic_header("u", "from-a-file"), "x-token": "file-token"}
    assert outcome(authenticator, Request(good, PEER)) == 200
    with_newline = {**good, "authorization": basic_header("u", "from-a-file\n")}
    assert outcome(authenticator, Request(with_newline, PEER)) == 401


@pytest.mark.parametrize(
    ("auth", "env", "message"),
    [
        (BASIC, {}, f"{KEY}.basic.password: environment variable BASIC_PW is not set"),
        (BASIC, {"BASIC_PW": ""}, f"{KEY}.basic.password: environment variable BASIC_PW"),
        (TOKEN_HEADER, {}, f"{KEY}.token.value: environment variable CB_TOKEN is not set"),
        (
            {"token": {"in_path": True, "value": {"file": "/nonexistent/token"}}},
            {},
            f"{KEY}.token.value: cannot read /nonexistent/token",
        ),
        (
            {"basic": {"username": "u", "password": {}}},
            {},
            f"{KEY}.basic.password: give exactly one of env or file",
        ),
        (
            {"basic": {"username": "u", "password": {"env": "A", "file": "/x"}}},
            {"A": "a"},
            f"{KEY}.basic.password: give exactly one of env or file",
        ),
    ],
)
def test_unusable_secret_is_a_config_error_naming_the_key(
    auth: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make(auth, env)
    assert message in str(info.value)


def test_secret_is_resolved_once_at_build_time() -> None:
    env = dict(ENV)
    authenticator = make(TOKEN_HEADER, env)
    env["CB_TOKEN"] = "rotated"
    assert outcome(authenticator, Request({"x-callback-token": "tok-123"}, PEER)) == 200
    assert outcome(authenticator, Request({"x-callback-token": "rotated"}, PEER)) == 401


@pytest.mark.parametrize(
    ("auth", "peer", "forwarded", "expected"),
    [
        # A dual-stack socket reports IPv4 peers IPv4-mapped: they were a false 403.
        (ALLOW, "::ffff:203.0.113.5", "", 200),
        (ALLOW, "::ffff:198.51.100.7", "", 403),
        (ALLOW_BEHIND_PROXY, "::ffff:10.1.2.3", "203.0.113.9", 200),
        (ALLOW_BEHIND_PROXY, "10.1.2.3", "::ffff:203.0.113.9", 200),
        (ALLOW_BEHIND_PROXY, "10.1.2.3", "203.0.113.9, ::ffff:10.9.9.9", 200),
    ],
)
def test_ipv4_mapped_addresses_match_ipv4_networks(
    auth: dict[str, Any], peer: str, forwarded: str, expected: int
) -> None:
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    assert outcome(make(auth), Request(headers, peer)) == expected


def test_a_non_ascii_header_token_can_match() -> None:
    authenticator = make(TOKEN_HEADER, {"CB_TOKEN": "tök-ǅ-123"})
    # What uvicorn hands the app: the header's UTF-8 bytes read as latin-1.
    sent = "tök-ǅ-123".encode().decode("latin-1")
    assert outcome(authenticator, Request({"x-callback-token": sent}, PEER)) == 200
    assert outcome(authenticator, Request({"x-callback-token": "tök-ǅ-123"}, PEER)) == 401


def test_a_non_ascii_path_token_can_match() -> None:
    authenticator = make(TOKEN_PATH, {"CB_TOKEN": "tök-123"})
    assert outcome(authenticator, Request({}, PEER, path_token="tök-123")) == 200
