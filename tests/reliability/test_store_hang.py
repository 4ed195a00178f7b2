"""A media store that accepts connections and never answers (a hung S3): every callback is
answered 503 within its deadline, and health and readiness stay responsive. Before the fix,
puts queued on the loop's default executor: answers came after 12 s (past OpenMarket's 10 s)
and /readyz waited as long."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from connector.config import Config
from tests.live import running
from tests.reliability.test_s3_outage import MO_CT, openmarket_mo

pytestmark = pytest.mark.integration

DEADLINE = 4.0
CALLBACKS = 48  # more than the translation threads: some must wait for one


@pytest.fixture
def hung_s3() -> Iterator[str]:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)  # connections complete in the kernel; nothing ever answers
    try:
        yield f"http://127.0.0.1:{hole.getsockname()[1]}"
    finally:
        hole.close()


def test_a_hung_store_gets_503_within_the_deadline_and_readiness_stays_quick(
    make_config: Callable[..., Config], topic: str, hung_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_HUNG_S3_KEY", "key")
    monkeypatch.setenv("T_HUNG_S3_SECRET", "secret")
    config = make_config(
        {
            "openmarket": {
                "enabled": True,
                "topic": topic,
                "deadline_seconds": DEADLINE,
                "auth": {"unauthenticated": True},
            }
        },
        media={
            "store": "s3",
            "s3": {
                "bucket": "mms-test",
                "endpoint_url": hung_s3,
                "access_key_id": {"env": "T_HUNG_S3_KEY"},
                "secret_access_key": {"env": "T_HUNG_S3_SECRET"},
            },
        },
    )

    async def load(base: str) -> tuple[list[tuple[int, str, float]], float]:
        async with httpx.AsyncClient(timeout=30) as client:

            async def callback(i: int) -> tuple[int, str, float]:
                started = time.monotonic()
                reply = await client.post(
                    f"{base}/callbacks/openmarket",
                    content=openmarket_mo(f"hung-{i}"),
                    headers={"Content-Type": MO_CT},
                )
                return reply.status_code, reply.json()["error"], time.monotonic() - started

            async def readiness() -> float:
                await asyncio.sleep(1)  # while every callback waits on the store
                started = time.monotonic()
                assert (await client.get(f"{base}/readyz")).status_code == 200
                return time.monotonic() - started

            *replies, ready = await asyncio.gather(
                *(callback(i) for i in range(CALLBACKS)), readiness()
            )
            return replies, ready

    with running(config) as base:
        replies, ready = asyncio.run(load(base))
    assert {(status, code) for status, code, _ in replies} <= {
        (503, "media_store_failed"),
        (503, "translate_timeout"),
    }
    assert max(took for _, _, took in replies) < DEADLINE + 1.5
    assert ready < 1.0
