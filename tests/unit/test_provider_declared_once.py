"""A provider is declared once: registering a `Provider` is all the connector needs (its test
table, tests/unit/test_<name>.py, and its payloads are the other two files of a new provider).

A throwaway provider, registered by a fixture and named nowhere else, gets a route, its own
options validated with the config, the `translate` command, the app's callback route and a
chart entry, with no other edit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import Field
from starlette.routing import Route as StarletteRoute

from connector import cli, pipeline
from connector.app import create_app
from connector.config import ConfigError, load
from connector.providers import PROVIDERS
from connector.providers.contract import (
    Callback,
    Options,
    Provider,
    Refusal,
    Sample,
    TranslateContext,
)
from connector.providers.fields import event_id, normalize_parties, parse_json
from connector.record import MmsEvent
from tests.helm.conftest import render, sets
from tests.helpers import callback

NAME = "throwaway"


class ThrowawayOptions(Options):
    greeting: str = "hello"
    max_words: int = Field(10, gt=0)


def translate(cb: Callback, ctx: TranslateContext[ThrowawayOptions]) -> list[MmsEvent]:
    data = parse_json(cb.body, max_elements=ctx.limits.max_elements)
    if not isinstance(data, dict):
        raise Refusal("invalid_event", "expected an object")
    words = str(data.get("text", "")).split()
    if len(words) > ctx.options.max_words:
        raise Refusal("too_many_words", f"over {ctx.options.max_words}", status=413)
    parties = normalize_parties(str(data["to"]), str(data["from"]), [str(data["to"])], None)
    return [
        MmsEvent(
            event_id=event_id(NAME, data["id"]),
            provider=NAME,
            event_type="received",
            direction="inbound",
            owner=parties.owner,
            received_at=cb.received_at,
            from_=parties.from_,
            to=parties.to,
            text=f"{ctx.options.greeting}: {' '.join(words)}",
        )
    ]


SAMPLE = Sample(
    b'{"id": "t-1", "from": "+15550001111", "to": "+15550002222", "text": "hi there"}',
    "application/json",
    "a message",
)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    provider = Provider(NAME, translate, SAMPLE, ThrowawayOptions)
    monkeypatch.setitem(PROVIDERS, NAME, provider)
    yield provider


def config_file(tmp_path: Path, settings: str, name: str = NAME) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"media: {{root: {tmp_path / 'media'}}}\n"
        f"providers:\n  {name}: {{enabled: true, auth: {{unauthenticated: true}}, {settings}}}\n"
    )
    return path


def test_unregistered_it_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"unknown provider '{NAME}'"):
        load(config_file(tmp_path, "topic: t"), env={})


def test_it_gets_a_route_and_its_options(registered: Provider, tmp_path: Path) -> None:
    config = load(config_file(tmp_path, "topic: mms.t, greeting: hey, max_words: 3"), env={})
    (route,) = pipeline.routes(config, env={})
    assert (route.name, route.path, route.provider) == (NAME, f"/callbacks/{NAME}", registered)
    assert route.context.options == ThrowawayOptions(greeting="hey", max_words=3)
    (record,) = pipeline.translate(route, callback(SAMPLE.body))
    assert (record.topic, record.key, record.event.text) == (
        "mms.t",
        "+15550002222",
        "hey: hi there",
    )
    with pytest.raises(Refusal, match="too_many_words"):
        pipeline.translate(
            route, callback(b'{"id": "2", "from": "1", "to": "2", "text": "a b c d"}')
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("max_words: 0", f"providers.{NAME}.max_words: Input should be greater than 0"),
        ("greting: hey", f"providers.{NAME}.greting: Extra inputs are not permitted"),
    ],
)
def test_its_options_are_validated_with_the_config(
    registered: Provider, tmp_path: Path, settings: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(config_file(tmp_path, settings), env={})
    assert message in str(info.value)


def test_the_app_serves_it_and_translate_runs_it(
    registered: Provider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, "topic: mms.t")
    app = create_app(load(path, env={}), env={})
    posts = {r.path for r in app.routes if isinstance(r, StarletteRoute) and "POST" in r.methods}
    assert posts == {f"/callbacks/{NAME}"}
    body = tmp_path / "body.json"
    body.write_bytes(SAMPLE.body)
    assert cli.main(["translate", "--provider", NAME, "--config", str(path), str(body)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["value"]["text"] == "hello: hi there"


def test_the_chart_renders_it_and_the_connector_loads_that(
    registered: Provider, helm: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm,
        *sets(
            f"providers.{NAME}.enabled=true",
            f"providers.{NAME}.auth.unauthenticated=true",
            f"providers.{NAME}.topic=mms.t",
            f"providers.{NAME}.greeting=hey",
        ),
    )
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered.config_text)
    (route,) = pipeline.routes(load(path, env={}), env={})
    assert (route.name, route.settings.topic) == (NAME, "mms.t")
    assert route.context.options.greeting == "hey"


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_providers_sample_translates(name: str, tmp_path: Path) -> None:
    """What `mms-connector dev` offers to send is a callback its provider takes."""
    (route,) = pipeline.routes(load(config_file(tmp_path, "topic: t", name), env={}), env={})
    sample = route.provider.sample
    encoded = pipeline.translate(
        route, callback(sample.body, {"Content-Type": sample.content_type})
    )
    assert encoded and all(e.event.provider == name for e in encoded)
