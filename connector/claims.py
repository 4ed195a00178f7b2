"""Claims on event ids shared by every replica, in a Redis-protocol store (Valkey, Redis).

A provider's retry can reach any replica. Before producing an event a replica claims its id
(`SET NX PX`): the one that gets it produces, then marks the id published (for the providers'
retry horizon) or, on a definite failure, gives the claim back. A replica that finds the id
published answers without producing; one that finds it claimed elsewhere answers 503 +
Retry-After (the first copy is still in flight there). A claim held by a replica that died
expires after `claim_ttl_seconds`.

The store is never allowed to stop callbacks: an error or a timeout (each call has
`timeout_seconds`) lets the callback go on with the replica's own window alone (fail open),
counted in mms_shared_window_errors_total and logged.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector import metrics
from connector.config import SharedWindowConfig

log = logging.getLogger(__name__)

KEY_PREFIX = "mms:event:"
PUBLISHED = b"published"
# Give a claim back only if it is still ours (a late release must not free another's claim).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Log a failing store at most this often; the metric counts every failure.
LOG_EVERY_SECONDS = 10.0
# Published marks the store did not take are tried again this often, at most this many kept.
REMARK_SECONDS = 1.0
MAX_UNMARKED = 100_000
# A claim the store did not answer is asked again after this, within the call's budget.
RETRY_SECONDS = 0.05


class Claim(enum.Enum):
    OURS = "ours"  # produce it (also: the store did not answer, fail open)
    PUBLISHED = "published"  # another copy was published: answer, do not produce
    ELSEWHERE = "elsewhere"  # being published by another replica right now


class SharedClaims:
    def __init__(self, client: Redis, settings: SharedWindowConfig) -> None:
        self._client = client
        self._claim_ms = int(settings.claim_ttl_seconds * 1000)
        self._published_ms = int(settings.published_ttl_seconds * 1000)
        self._timeout = settings.timeout_seconds
        # Unique per process: a claim names its holder, so only the holder gives it back.
        self._holder = f"claimed:{uuid.uuid4().hex}".encode()
        self._release = client.register_script(_RELEASE)
        self._logged_at = 0.0
        self._down_since: float | None = None  # when the store stopped answering claims
        self._unmarked: set[str] = set()  # published, not yet marked so in the store
        self._remarking: asyncio.Future[None] | None = None

    @classmethod
    def connect(cls, settings: SharedWindowConfig, env: Mapping[str, str]) -> SharedClaims:
        """A client for the store, its password read from `env` or a file (connections are
        made on first use: a store that is down at start-up only means failing open)."""
        secret = settings.password
        client = Redis.from_url(
            settings.url,
            password=secret.resolve(env, "dedupe.shared.password") if secret else None,
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
        )
        return cls(client, settings)

    async def claim(self, event_ids: Iterable[str]) -> dict[str, Claim]:
        """Claim each event id; what each one is for this caller."""
        ids = list(event_ids)
        if not ids:
            return {}
        # A store that does not answer is asked again until the call's budget is spent: one
        # restarting (under a second) is ridden out. Failing open at once let every retry in
        # that moment be produced again if another replica had published it (18-23 duplicates
        # in a run with the store restarted while retries flowed).
        # Once the store has not answered for a whole budget it is down, not restarting: fail
        # open at once, so an outage does not hold every callback for the budget.
        now = time.monotonic()
        deadline = now + self._timeout
        while True:
            try:
                lost, found = await self._claim(ids)
                self._down_since = None
                break
            except (RedisError, OSError) as exc:
                now = time.monotonic()
                self._down_since = self._down_since or now
                down = now - self._down_since >= self._timeout
                if down or now + RETRY_SECONDS >= deadline:
                    self._failed("claim", exc)
                    return dict.fromkeys(ids, Claim.OURS)
                await asyncio.sleep(RETRY_SECONDS)
        out = dict.fromkeys(ids, Claim.OURS)
        for event_id, value in zip(lost, found, strict=True):
            # None: the other claim ended between our SET and GET; the retry will find out.
            out[event_id] = Claim.PUBLISHED if value == PUBLISHED else Claim.ELSEWHERE
        metrics.SHARED_CLAIMS.labels("conflict").inc(len(lost))
        return out

    async def _claim(self, ids: list[str]) -> tuple[list[str], list[bytes | str | None]]:
        """SET NX each id; the ids another holder has, and their values."""
        async with self._client.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.set(KEY_PREFIX + event_id, self._holder, nx=True, px=self._claim_ms)
            taken = await pipe.execute()
        lost = [event_id for event_id, ok in zip(ids, taken, strict=True) if not ok]
        if not lost:
            return [], []
        return lost, await self._client.mget([KEY_PREFIX + i for i in lost])

    async def published(self, event_ids: Iterable[str]) -> None:
        """The caller's claimed events are in Kafka: every replica answers their retries.

        A mark the store did not take is tried again every REMARK_SECONDS until it does: left
        out, the event's claim would expire and a retry on another replica produce it again
        (23 duplicates in a run where the store restarted while deliveries settled).
        """
        ids = list(event_ids)
        if ids and not await self._mark(ids):
            room = MAX_UNMARKED - len(self._unmarked)
            self._unmarked.update(ids[: max(0, room)])
            if self._remarking is None or self._remarking.done():
                self._remarking = asyncio.ensure_future(self._remark())

    async def _mark(self, event_ids: list[str]) -> bool:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event_id in event_ids:
                    pipe.set(KEY_PREFIX + event_id, PUBLISHED, px=self._published_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("publish", exc)
            return False
        return True

    async def _remark(self) -> None:
        while self._unmarked:
            await asyncio.sleep(REMARK_SECONDS)
            batch = list(self._unmarked)[:1000]
            if await self._mark(batch):
                self._unmarked.difference_update(batch)

    async def release(self, event_ids: Iterable[str]) -> None:
        """The caller's claimed events were not produced (a definite failure): a retry, on any
        replica, may claim them again."""
        try:
            for event_id in event_ids:
                await self._release(keys=[KEY_PREFIX + event_id], args=[self._holder])
        except (RedisError, OSError) as exc:
            self._failed("release", exc)

    async def close(self) -> None:
        if self._unmarked:
            await self._mark(list(self._unmarked))  # one last try
        if self._remarking is not None:
            self._remarking.cancel()
        await self._client.aclose()

    def _failed(self, op: str, exc: BaseException) -> None:
        metrics.SHARED_WINDOW_ERRORS.labels(op).inc()
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            log.warning(
                "shared window: %s failed (%s); going on with this replica's window", op, exc
            )
