"""`pipeline.translate`: what the endpoint, `translate` and `dlq replay` publish, encoded and
size-checked, so a record Kafka would refuse is a refusal (dead-lettered), never a 503 loop."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from connector import pipeline
from connector.codec import avro_payload
from connector.config import Config
from connector.providers.contract import Callback, Options, Refusal, TranslateContext
from connector.record import MmsEvent
from tests import harness
from tests.helpers import RECEIVED_AT, callback, payload

BODY = payload("bandwidth_v2", "message_sending.json")


def route(**settings: object) -> pipeline.Route:
    config = Config.model_validate({"providers": {"bandwidth-v2": {"enabled": True}}, **settings})
    [found] = pipeline.routes(config)
    return found


def with_text(text: str) -> bytes:
    event = orjson.loads(BODY)[0]
    event["message"]["text"] = text
    return orjson.dumps([event])


def test_records_are_encoded_once_here() -> None:
    [out] = pipeline.translate(route(), callback(BODY))
    assert out.payload == avro_payload(out.event.to_avro())


@pytest.mark.parametrize(
    ("kafka", "text_bytes", "too_large"),
    [
        ({}, 999_000, True),  # librdkafka's default message.max.bytes: 1,000,000
        ({}, 900_000, False),
        ({"producer": {"message.max.bytes": 2_000_000}}, 999_000, False),
        ({"common": {"message.max.bytes": 500_000}}, 600_000, True),
    ],
)
def test_a_record_kafka_would_refuse_is_refused_here(
    kafka: dict[str, object], text_bytes: int, too_large: bool
) -> None:
    body = callback(with_text("x" * text_bytes))
    if not too_large:
        assert len(pipeline.translate(route(kafka=kafka), body)) == 1
        return
    with pytest.raises(Refusal) as info:
        pipeline.translate(route(kafka=kafka), body)
    assert (info.value.code, info.value.status) == ("record_too_large", 413)


def test_a_record_that_does_not_encode_is_a_refusal_not_a_500() -> None:
    def surrogate(cb: Callback, ctx: TranslateContext[Options]) -> list[MmsEvent]:
        event = MmsEvent("id", "bandwidth-v2", "received", "inbound", "+1", RECEIVED_AT)
        return [dataclasses.replace(event, text="lone \ud800 surrogate")]

    provider = dataclasses.replace(route().provider, translate=surrogate)
    broken = dataclasses.replace(route(), provider=provider)
    with pytest.raises(Refusal) as info:
        pipeline.translate(broken, callback(BODY))
    assert (info.value.code, info.value.status) == ("record_unencodable", 400)


def test_digests_tell_content_apart_but_not_deliveries() -> None:
    [first] = pipeline.translate(route(), callback(BODY))
    later = Callback(BODY, {"x-request-id": "other"}, RECEIVED_AT.replace(year=2025))
    [again] = pipeline.translate(route(), later)
    [changed] = pipeline.translate(route(), callback(with_text("other text")))
    assert first.event.event_id == again.event.event_id == changed.event.event_id
    assert first.digest == again.digest
    assert first.digest != changed.digest


def test_a_batch_envelope_is_per_delivery(tmp_path) -> None:
    # Infobip may batch a retried report anew: its batch.* attributes (messageCount,
    # pendingMessageCount of the request) differ while the report is the same.
    infobip = harness.route("infobip", tmp_path)
    body = orjson.loads(payload("infobip", "openapi_v2_delivery_report.json"))
    [first, *_] = pipeline.translate(infobip, callback(orjson.dumps(body)))
    body["pendingMessageCount"] = 7
    [retried, *_] = pipeline.translate(infobip, callback(orjson.dumps(body)))
    assert "batch.pendingMessageCount" in retried.event.attributes
    assert first.event.attributes != retried.event.attributes
    assert first.digest == retried.digest


def test_a_telnyx_retry_has_the_first_copys_digest(tmp_path) -> None:
    # Telnyx's meta (delivery.attempt, delivery.delivered_to) differs between its retries.
    telnyx = harness.route("telnyx", tmp_path)
    body = payload("telnyx", "inbound_mms.telnyx-dotnet.json")
    retry = harness.variant(
        "telnyx",
        "inbound_mms.telnyx-dotnet.json",
        {"meta": {"attempt": 3, "delivered_to": "https://failover.example.com/t"}},
    )
    [first] = pipeline.translate(telnyx, callback(body))
    [again] = pipeline.translate(telnyx, callback(retry))
    assert first.event.attributes != again.event.attributes
    assert (again.event.event_id, again.digest) == (first.event.event_id, first.digest)


def test_a_callback_cannot_make_records_many_times_its_size(tmp_path) -> None:
    # Found by review: Sinch copies the fields beside its notifications into every record, so
    # 100 tiny notifications beside 8,000 fields made 100 records of 8,000 attributes each.
    notification = (
        "<NOTIFICATION><ORIGIN>MMS_MO</ORIGIN><CODE>N401</CODE><FROM>14155550100</FROM>"
        "<TO>28444</TO><TRACKINGID>MMS_MO_{i}</TRACKINGID></NOTIFICATION>"
    )
    body = (
        "<POSTBACK>"
        + "".join(f"<F{i}>v</F{i}>" for i in range(8000))
        + "".join(notification.format(i=i) for i in range(100))
        + "</POSTBACK>"
    ).encode()
    sinch = harness.route("sinch", tmp_path)
    with pytest.raises(Refusal) as info:
        pipeline.translate(sinch, callback(body, {"content-type": "application/xml"}))
    assert (info.value.code, info.value.status) == ("records_too_large", 413)
    # The same notifications alone are fine: a few records, each about the body's size.
    alone = ("<POSTBACK>" + notification.format(i=1) + "</POSTBACK>").encode()
    [only] = pipeline.translate(sinch, callback(alone, {"content-type": "application/xml"}))
    assert only.event.provider_message_id == "MMS_MO_1"
