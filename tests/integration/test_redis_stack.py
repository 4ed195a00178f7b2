"""The tests' Redis is a real server: it wants the password, keys expire, it restarts in place.

Stopping and starting Redis, and the upgrade from a state.json that has no Redis, run on a
dedicated stack of this module's own (as tests/reliability does for S3): the shared one keeps
running for every other test.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector import devstack
from connector.devstack import Endpoints, redis_server, stack

pytestmark = pytest.mark.integration


def _address(url: str) -> tuple[str, int, str | None]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port, parts.password


@pytest.fixture
def key() -> str:
    return f"test-redis-stack:{uuid.uuid4().hex}"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=5) as connected:
        yield connected


def test_ping_wants_the_password(redis_url: str) -> None:
    host, port, password = _address(redis_url)
    if password is None:
        pytest.skip("MMS_TEST_REDIS_URL names a server without a password")
    assert redis_server.answers(host, port, password)
    assert not redis_server.answers(host, port, None)
    assert not redis_server.answers(host, port, "not-the-password")
    # On the wire: a PING without AUTH is refused, the connection stays open for an AUTH.
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(4096).startswith(b"-NOAUTH ")
    # And to the client the connector uses (which opens with HELLO, refused just as well);
    # without retries, which would only repeat the refusal for 4 s.
    once = Retry(NoBackoff(), 0)
    anonymous = redis.Redis(host=host, port=port, socket_timeout=5, retry=once)
    wrong = redis.Redis(host=host, port=port, password="nope", socket_timeout=5, retry=once)
    for refused in (anonymous, wrong):
        with refused, pytest.raises(redis.AuthenticationError):
            refused.ping()


def test_set_nx_px_then_get_then_expiry(client: redis.Redis, key: str) -> None:
    assert client.ping()
    assert client.set(key, b"first", nx=True, px=400)
    # The window's claim: a second SET NX of a live key does nothing.
    assert client.set(key, b"second", nx=True, px=400) is None
    assert client.get(key) == b"first"
    assert 0 < client.pttl(key) <= 400
    deadline = time.monotonic() + 5
    while client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get(key) is None


# --- a stack of this module's own ---------------------------------------------------------


@pytest.fixture(scope="module")
def dedicated_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Endpoints]]:
    if not (shutil.which("java") and shutil.which("mvn")):
        pytest.skip("a dedicated stack needs Java and Maven")
    home = tmp_path_factory.mktemp("redis-stack")
    try:
        yield home, devstack.up(home)
    finally:
        devstack.down(home)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_stop_and_start_redis_keeps_the_port_and_the_window(
    dedicated_stack: tuple[Path, Endpoints], key: str
) -> None:
    home, endpoints = dedicated_stack
    assert endpoints.redis_url is not None
    host, port, password = _address(endpoints.redis_url)
    assert (host, password) == ("127.0.0.1", redis_server.PASSWORD)
    assert redis_server.PASSWORD not in repr(endpoints)
    with redis.Redis.from_url(endpoints.redis_url, socket_timeout=5) as client:
        assert client.set(key, b"1", px=60_000)

    assert devstack.stop_redis(home)
    assert not redis_server.answers(host, port)
    assert _bindable(port)
    assert devstack.status(home) is None
    assert not devstack.stop_redis(home)

    started = time.monotonic()
    again = devstack.start_redis(home)
    took = time.monotonic() - started
    assert again.redis_url == endpoints.redis_url
    assert redis_server.answers(host, port)
    assert devstack.status(home) == endpoints
    with redis.Redis.from_url(endpoints.redis_url, socket_timeout=5) as client:
        # The window survives a restart of its server (append-only file), as it must in
        # production: an empty one would let replicas produce again what was published.
        assert client.get(key) == b"1"
    print(f"start_redis took {took:.2f} s")


def test_up_on_a_stack_from_before_redis_starts_only_redis(
    dedicated_stack: tuple[Path, Endpoints], capsys: pytest.CaptureFixture[str]
) -> None:
    home, endpoints = dedicated_stack
    assert devstack.stop_redis(home)
    recorded = json.loads((home / stack.STATE_FILE).read_text())
    old = {name: value for name, value in recorded.items() if not name.startswith("redis_")}
    (home / stack.STATE_FILE).write_text(json.dumps(old))
    state = stack.read_state(home)
    assert state is not None and state.endpoints().redis_url is None

    upgraded = devstack.up(home)

    now = json.loads((home / stack.STATE_FILE).read_text())
    assert {name: now[name] for name in old} == old  # Kafka, registry and S3Proxy untouched
    assert now["redis_pid"] is not None
    assert upgraded.redis_url is not None
    assert redis_server.answers(*_address(upgraded.redis_url))
    assert upgraded.bootstrap_servers == endpoints.bootstrap_servers
    capsys.readouterr()
    assert devstack.main(["--home", str(home), "status"]) == 0
    assert f"REDIS_URL={upgraded.redis_url}\n" in capsys.readouterr().out
