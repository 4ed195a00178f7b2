"""The duplicate window shared by replicas, on the real broker, registry and Redis server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from connector import claims as claims_module
from connector import metrics
from connector.claims import KEY_PREFIX, PUBLISHED, Claim, SharedClaims
from connector.config import Config, SharedWindowConfig
from connector.pipeline import routes, translate
from tests.helpers import callback, payload
from tests.live import running, shared_window

pytestmark = pytest.mark.integration

PASSWORD_VAR = "MMS_TEST_SHARED_WINDOW_PASSWORD"


@pytest.fixture
def shared(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`dedupe.shared` for the test server, its password in the environment."""
    settings, env = shared_window(redis_url, PASSWORD_VAR)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings


def event(message_id: str) -> bytes:
    body = orjson.loads(payload("bandwidth_v2", "message_sending.json"))
    body[0]["message"]["id"] = message_id
    return orjson.dumps(body)


def replica(make_config, topic: str, shared: dict[str, Any] | None) -> Config:
    dedupe: dict[str, Any] = {"shared": shared} if shared else {}
    return make_config(
        {"bandwidth-v2": {"enabled": True, "topic": topic, "auth": {"unauthenticated": True}}},
        dedupe=dedupe,
    )


def event_id_of(config: Config, body: bytes) -> str:
    (route,) = routes(config, env={})
    (encoded,) = translate(route, callback(body))
    return encoded.event.event_id


def post(base: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{base}/callbacks/bandwidth-v2", content=body, timeout=30)


def test_a_retry_on_another_replica_is_answered_without_producing(
    make_config, records, topic: str, shared: dict[str, Any]
) -> None:
    a, b = replica(make_config, topic, shared), replica(make_config, topic, shared)
    body = event(f"retry-{uuid.uuid4().hex}")
    with running(a) as base_a, running(b) as base_b:
        assert post(base_a, body).status_code == 200
        again = post(base_b, body)
    assert again.status_code == 200
    assert again.json()["event_ids"] == [event_id_of(a, body)]
    assert len(records(topic)) == 1


def test_without_the_shared_window_each_replica_produces(make_config, records, topic) -> None:
    # What the shared window fixes: the same two posts produce twice.
    a, b = replica(make_config, topic, None), replica(make_config, topic, None)
    body = event(f"twice-{uuid.uuid4().hex}")
    with running(a) as base_a, running(b) as base_b:
        assert post(base_a, body).status_code == 200
        assert post(base_b, body).status_code == 200
    assert len(records(topic)) == 2


def test_an_event_in_flight_on_another_replica_is_answered_503(
    make_config, records, topic: str, shared: dict[str, Any], redis_url: str
) -> None:
    config = replica(make_config, topic, shared)
    body = event(f"elsewhere-{uuid.uuid4().hex}")
    key = KEY_PREFIX + event_id_of(config, body)

    async def held_by_another(value: bytes | None) -> None:
        client = Redis.from_url(redis_url)
        if value is None:
            await client.delete(key)
        else:
            await client.set(key, value, px=60_000)
        await client.aclose()

    asyncio.run(held_by_another(b"claimed:another-replica"))
    with running(config) as base:
        busy = post(base, body)
        assert (busy.status_code, busy.headers.get("retry-after")) == (503, "5")
        assert busy.json()["error"] == "in_flight_elsewhere"
        assert records(topic) == []
        asyncio.run(held_by_another(None))  # that replica gave up on it
        assert post(base, body).status_code == 200
    assert len(records(topic)) == 1


def test_a_store_that_is_down_fails_open(make_config, records, topic: str) -> None:
    down = {"url": "redis://127.0.0.1:9/0", "timeout_seconds": 0.2}  # discard port: refused
    config = replica(make_config, topic, down)
    errors = metrics.SHARED_WINDOW_ERRORS.labels("claim")
    before = errors._value.get()
    with running(config) as base:
        assert post(base, event(f"open-{uuid.uuid4().hex}")).status_code == 200
    assert len(records(topic)) == 1
    assert errors._value.get() == before + 1


def test_claims_on_the_real_store(redis_url: str) -> None:
    """The protocol itself: claim, published, release, and who may release."""
    settings = SharedWindowConfig(url="redis://unused")

    async def scenario() -> None:
        a = SharedClaims(Redis.from_url(redis_url), settings)
        b = SharedClaims(Redis.from_url(redis_url), settings)
        first, second = f"e-{uuid.uuid4().hex}", f"e-{uuid.uuid4().hex}"
        assert await a.claim([first, second]) == {first: Claim.OURS, second: Claim.OURS}
        assert await b.claim([first]) == {first: Claim.ELSEWHERE}
        await b.release([first])  # not b's claim: it stays a's
        assert await b.claim([first]) == {first: Claim.ELSEWHERE}
        await a.published([first])
        await a.release([second])
        assert await b.claim([first, second]) == {first: Claim.PUBLISHED, second: Claim.OURS}
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_a_published_mark_the_store_missed_is_marked_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store restarting while a delivery settles: the mark is tried again until it takes,
    or the claim would expire and a retry elsewhere produce the event again."""
    monkeypatch.setattr(claims_module, "REMARK_SECONDS", 0.05)

    async def scenario() -> bytes | None:
        client = Redis.from_url(redis_url)
        claims = SharedClaims(client, SharedWindowConfig(url="redis://unused"))
        event_id = f"e-{uuid.uuid4().hex}"
        assert await claims.claim([event_id]) == {event_id: Claim.OURS}
        real = client.pipeline
        calls = 0

        def flaky(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("the store is restarting")
            return real(*args, **kwargs)

        monkeypatch.setattr(client, "pipeline", flaky)
        await claims.published([event_id])  # missed
        await asyncio.sleep(0.3)
        value: bytes | None = await client.get(KEY_PREFIX + event_id)
        await claims.close()
        return value

    assert asyncio.run(scenario()) == PUBLISHED


def test_a_store_restarting_is_ridden_out_within_the_budget(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim the store does not answer at once is asked again within timeout_seconds, so a
    quick restart does not fail open (which lets a retry elsewhere be produced again)."""

    async def scenario() -> tuple[dict[str, Claim], bytes | None]:
        client = Redis.from_url(redis_url)
        claims = SharedClaims(client, SharedWindowConfig(url="redis://unused", timeout_seconds=2))
        real, calls = client.pipeline, 0

        def restarting(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls <= 3:
                raise ConnectionError("the store is restarting")
            return real(*args, **kwargs)

        monkeypatch.setattr(client, "pipeline", restarting)
        event_id = f"e-{uuid.uuid4().hex}"
        got = await claims.claim([event_id])
        value: bytes | None = await client.get(KEY_PREFIX + event_id)
        await claims.close()
        return got, value

    errors = metrics.SHARED_WINDOW_ERRORS.labels("claim")
    before = errors._value.get()
    got, value = asyncio.run(scenario())
    assert list(got.values()) == [Claim.OURS]
    assert value is not None and value.startswith(b"claimed:")  # really claimed, not failed open
    assert errors._value.get() == before
