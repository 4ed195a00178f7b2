"""The delivery protocol without Kafka: claim, produce, await, settle (connector/delivery.py),
against a producer whose delivery reports the test decides. The real broker's side is in
tests/integration and tests/reliability."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from connector import pipeline
from connector.claims import Claim
from connector.config import Config
from connector.dedupe import Window
from connector.delivery import Clients, Delivery, NotDelivered
from connector.providers import PROVIDERS
from connector.publisher import KafkaRecord, PublishError
from tests.helpers import callback


class Producer:
    """Records what is sent; each send's report is a future the test resolves."""

    def __init__(self, refuse: bool = False) -> None:
        self.sent: list[list[KafkaRecord]] = []
        self.reports: list[asyncio.Future[None]] = []
        self.refuse = refuse

    def send(self, records: list[KafkaRecord]) -> asyncio.Future[None]:
        if self.refuse:
            raise PublishError("queue full")
        self.sent.append(records)
        self.reports.append(asyncio.get_running_loop().create_future())
        return self.reports[-1]


class Framing:
    def frame(self, _topic: str, payload: bytes) -> bytes:
        return b"\x00" + payload


def encoded(tmp_path: Path) -> list[pipeline.EncodedEvent]:
    config = Config.model_validate(
        {"media": {"root": str(tmp_path)}, "providers": {"bandwidth-v2": {"enabled": True}}}
    )
    (route,) = pipeline.routes(config, env={})
    return pipeline.translate(route, callback(PROVIDERS["bandwidth-v2"].sample.body))


def delivery(producer: Producer) -> Delivery:
    clients = Clients(registry=Any, codec=Framing(), publisher=producer)  # type: ignore[arg-type]
    return Delivery(clients, Window(3600, 1000))


def later(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


def test_an_event_is_produced_once_and_its_repeat_answered_from_the_window(tmp_path) -> None:
    events, producer = encoded(tmp_path), Producer()

    async def scenario() -> tuple[int, int]:
        d = delivery(producer)
        first = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0)
        producer.reports[0].set_result(None)
        again = await d.deliver(events, later())
        return len((await first).produced), len(again.produced)

    assert asyncio.run(scenario()) == (1, 0)
    assert len(producer.sent) == 1


def test_a_repeat_while_the_first_is_in_flight_waits_for_it(tmp_path) -> None:
    events, producer = encoded(tmp_path), Producer()

    async def scenario() -> tuple[int, int]:
        d = delivery(producer)
        first = asyncio.create_task(d.deliver(events, later()))
        repeat = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0.01)
        assert not repeat.done()  # waiting for the first copy's report
        producer.reports[0].set_result(None)
        return len((await first).produced), len((await repeat).produced)

    assert asyncio.run(scenario()) == (1, 0)
    assert len(producer.sent) == 1


def test_a_failed_delivery_is_not_delivered_and_its_retry_produces(tmp_path) -> None:
    events, producer = encoded(tmp_path), Producer()

    async def scenario() -> int:
        d = delivery(producer)
        first = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0)
        producer.reports[0].set_exception(PublishError("broker down"))
        with pytest.raises(NotDelivered) as info:
            await first
        assert info.value.code == "kafka_unavailable"
        retry = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0)
        producer.reports[1].set_result(None)
        return len((await retry).produced)

    assert asyncio.run(scenario()) == 1
    assert len(producer.sent) == 2


def test_a_late_report_is_still_recorded_so_the_retry_is_not_produced(tmp_path) -> None:
    events, producer = encoded(tmp_path), Producer()

    async def scenario() -> int:
        d = delivery(producer)
        with pytest.raises(NotDelivered, match="deadline"):
            await d.deliver(events, later(0.05))
        producer.reports[0].set_result(None)  # the record lands after the reply was 503
        await asyncio.sleep(0)
        return len((await d.deliver(events, later())).produced)

    assert asyncio.run(scenario()) == 0
    assert len(producer.sent) == 1


def test_a_refused_send_releases_the_claim(tmp_path) -> None:
    events = encoded(tmp_path)

    async def scenario() -> int:
        d = delivery(Producer(refuse=True))
        with pytest.raises(NotDelivered, match="queue full"):
            await d.deliver(events, later())
        ok = Producer()
        d.clients = Clients(registry=Any, codec=Framing(), publisher=ok)  # type: ignore[arg-type]
        retry = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0)
        ok.reports[0].set_result(None)
        return len((await retry).produced)

    assert asyncio.run(scenario()) == 1


class ClaimedElsewhere:
    """A shared window where another replica holds every claim, answering when told to."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()

    async def claim(self, claimed: dict[str, int]) -> dict[str, Claim]:
        await self.answer.wait()
        return dict.fromkeys(claimed, Claim.ELSEWHERE)

    async def release(self, _claimed: dict[str, int]) -> None:
        pass


def test_a_repeat_waiting_on_a_claim_held_elsewhere_answers_in_flight_elsewhere(
    tmp_path: Path,
) -> None:
    # It waited on this process's first copy, which found another replica publishing it: a 503
    # for both (it was a 500: the waiter's error escaped as our own bug).
    events, producer = encoded(tmp_path), Producer()

    async def scenario() -> list[str]:
        shared = ClaimedElsewhere()
        d = delivery(producer)
        d.claims = shared  # type: ignore[assignment]
        first = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0)
        repeat = asyncio.create_task(d.deliver(events, later()))
        await asyncio.sleep(0)
        shared.answer.set()
        codes = []
        for task in (first, repeat):
            with pytest.raises(NotDelivered) as info:
                await task
            codes.append(info.value.code)
        return codes

    assert asyncio.run(scenario()) == ["in_flight_elsewhere", "in_flight_elsewhere"]
    assert producer.sent == []
