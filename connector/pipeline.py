"""A callback's path from bytes to the records to publish, shared by the HTTP app and the CLI.

`translate()` is what the endpoint, `mms-connector translate` and `dlq replay` run, so what the
command shows is what the endpoint does: records are encoded and size-checked here, so one that
Kafka would refuse is a refusal (dead-lettered), never a 503 on every retry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connector.codec import FRAMING_BYTES, Codec, avro_payload
from connector.config import DEFAULT_MAX_MESSAGE_BYTES, Config, ProviderConfig
from connector.media import MediaStore, open_store
from connector.providers import PROVIDERS
from connector.providers.contract import Callback, Provider, Refusal, TranslateContext
from connector.publisher import KafkaRecord
from connector.record import MmsEvent

log = logging.getLogger(__name__)

# Room for the record batch's own fields next to key, value and headers (librdkafka counts
# them against message.max.bytes too).
RECORD_OVERHEAD_BYTES = 1024
# What one callback may produce, past its own size: records repeat parts of a callback (a
# Telnyx event per recipient, the fields beside Sinch's notifications, Infobip's batch), and an
# 844 KB Sinch postback of 100 notifications beside 9,500 fields made 92 MB of records.
MAX_AMPLIFICATION = 4
AMPLIFICATION_FLOOR_BYTES = 1024 * 1024
# Attributes that may differ between retries of one event without its content differing:
# request headers (OpenMarket's X-Request-Id), how the provider delivered this copy (Telnyx's
# meta: attempt, the URL posted to) and the envelope of a batch (Infobip may batch a retried
# report anew).
_PER_DELIVERY_ATTRIBUTES = ("header.", "delivery.", "batch.")


@dataclass(frozen=True, slots=True)
class Route:
    """One enabled provider: where its callbacks arrive and what translates them."""

    name: str
    path: str
    provider: Provider
    settings: ProviderConfig
    context: TranslateContext[Any]
    # Where bodies too large for a dead letter are kept (any provider's), and inline media
    # (a provider that stores_media; only that one gets it in its context).
    store: MediaStore
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event ready to publish: Avro-encoded and size-checked, with its topic, key and
    headers; framed for Kafka once the registry gave its schema id (`kafka_record`)."""

    topic: str
    key: str
    headers: dict[str, str]
    event: MmsEvent
    payload: bytes  # the Avro record, without the wire format's framing
    digest: int  # of the event's content, received_at aside: tells a true repeat from a clash

    def value(self) -> dict[str, Any]:
        return self.event.to_avro()

    def kafka_record(self, codec: Codec) -> KafkaRecord:
        """The Kafka message: key the owner number as text, value Avro in the wire format."""
        return KafkaRecord(
            self.topic,
            self.key.encode(),
            codec.frame(self.topic, self.payload),
            [(k, v.encode()) for k, v in self.headers.items()],
        )


def routes(config: Config, env: Mapping[str, str] | None = None) -> list[Route]:
    """One route per enabled provider, sharing one media store (its secrets read from `env`)."""
    store = open_store(config.media, os.environ if env is None else env)
    return [_route(config, name, settings, store) for name, settings in config.enabled().items()]


def _route(config: Config, name: str, settings: ProviderConfig, store: MediaStore) -> Route:
    provider = PROVIDERS[name]
    context = TranslateContext(
        options=settings.options(provider.options),
        default_country=settings.default_country,
        limits=settings.limits,
        media_store=store if provider.stores_media else None,
    )
    return Route(
        name, config.route_path(name), provider, settings, context, store,
        config.kafka.max_message_bytes,
    )  # fmt: skip


def translate(
    route: Route, callback: Callback, media_store: MediaStore | None = None
) -> list[EncodedEvent]:
    """Translate one callback into the records to publish; raises `Refusal` and nothing else.
    Inline media go to `media_store` when given (the endpoint's DeferredPuts), else to the
    route's."""
    context = route.context
    if media_store is not None:
        context = dataclasses.replace(context, media_store=media_store)
    try:
        events = route.provider.translate(callback, context)
    except Refusal:
        raise
    except Exception as exc:
        # Parsers should refuse cleanly; this net keeps a parser bug from becoming a 500.
        log.exception("%s: parser failed unexpectedly", route.name)
        raise Refusal("untranslatable", f"the callback could not be translated ({exc!r})") from exc
    encoded = [_encoded(route, event) for event in events]
    produced = sum(len(e.payload) for e in encoded)
    allowed = MAX_AMPLIFICATION * len(callback.body) + AMPLIFICATION_FLOOR_BYTES
    if produced > allowed:
        raise Refusal(
            "records_too_large",
            f"{len(encoded)} records of {produced} bytes in all from a {len(callback.body)}-byte "
            f"callback; at most {allowed}",
            status=413,
        )
    return encoded


def _encoded(route: Route, event: MmsEvent) -> EncodedEvent:
    record = event.to_avro()
    try:
        payload = avro_payload(record)
    except Exception as exc:
        # Our bug more likely than the provider's, but retrying cannot fix it: dead-lettered
        # (replayable once fixed), never a 500 on every retry.
        log.exception("%s: record does not encode", route.name)
        raise Refusal("record_unencodable", f"the record does not encode: {exc}") from exc
    headers = {
        "event_id": event.event_id,
        "provider": event.provider,
        "event_type": event.event_type,
    }
    size = (
        FRAMING_BYTES
        + len(payload)
        + len(event.owner.encode())
        + sum(len(k) + len(v) for k, v in headers.items())
        + RECORD_OVERHEAD_BYTES
    )
    if size > route.max_message_bytes:
        raise Refusal(
            "record_too_large",
            f"the record is {size} bytes; Kafka takes at most {route.max_message_bytes}",
            status=413,
        )
    return EncodedEvent(route.settings.topic, event.owner, headers, event, payload, _digest(record))


def _digest(record: dict[str, Any]) -> int:
    content = {k: v for k, v in record.items() if k not in ("received_at", "attributes")}
    attributes = record["attributes"]
    content["attributes"] = {
        k: v for k, v in attributes.items() if not k.startswith(_PER_DELIVERY_ATTRIBUTES)
    }
    return hash(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
