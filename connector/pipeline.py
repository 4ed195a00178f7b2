"""A callback's path from bytes to the records to publish, shared by the HTTP app and the CLI.

`translate()` is what both the endpoint and `mms-connector translate` run, so what the command
shows is what the endpoint does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from connector.callback import Callback, Provider, Refusal, TranslateContext
from connector.codec import Codec
from connector.config import Config, ProviderConfig
from connector.media import FilesystemMediaStore
from connector.providers import PROVIDERS
from connector.publisher import OutMessage
from connector.record import MmsEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: str
    provider: Provider
    settings: ProviderConfig
    context: TranslateContext


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: str
    headers: dict[str, str]
    event: MmsEvent

    def value(self) -> dict[str, Any]:
        return self.event.to_avro()

    def message(self, codec: Codec) -> OutMessage:
        """The Kafka message: key the owner number as text, value Avro in the wire format."""
        return OutMessage(
            self.topic,
            self.key.encode(),
            codec.encode(self.topic, self.value()),
            [(k, v.encode()) for k, v in self.headers.items()],
        )


def routes(config: Config) -> list[Route]:
    store = FilesystemMediaStore(config.media.root)
    return [
        Route(
            name=name,
            path=config.route_path(name),
            provider=PROVIDERS[name],
            settings=settings,
            context=TranslateContext(
                default_country=settings.default_country,
                limits=settings.limits,
                media_store=store,
            ),
        )
        for name, settings in config.enabled().items()
    ]


def translate(route: Route, callback: Callback) -> list[Outgoing]:
    """Translate one callback into the records to publish; raises `Refusal` and nothing else."""
    try:
        events = route.provider.translate(callback, route.context)
    except Refusal:
        raise
    except Exception as exc:
        # Parsers should refuse cleanly; this net keeps a parser bug from becoming a 500.
        log.exception("%s: parser failed unexpectedly", route.name)
        raise Refusal("untranslatable", f"the callback could not be translated ({exc!r})") from exc
    return [
        Outgoing(
            topic=route.settings.topic,
            key=event.owner,
            headers={
                "event_id": event.event_id,
                "provider": event.provider,
                "event_type": event.event_type,
            },
            event=event,
        )
        for event in events
    ]
