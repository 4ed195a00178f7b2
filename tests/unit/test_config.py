"""Config loading: validation names the key and the problem; environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ConfigError, load
from connector.pipeline import routes
from connector.providers.openmarket.options import PartLimits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers:\n  messagebird: {enabled: true}\n", "unknown provider 'messagebird'"),
        ("kafka: {bootstrap_servers: 1, acks: 0}\n", "kafka.acks: Extra inputs are not permitted"),
        ("providers:\n  sinch: {enabled: maybe}\n", "providers.sinch.enabled"),
        ("providers:\n  sinch: {deadline_seconds: 0}\n", "providers.sinch.deadline_seconds"),
        ("schema_registry: {compatibility: NONE}\n", "schema_registry.compatibility"),
        # A provider's own options are checked by its model, and only it has them.
        ("providers:\n  openmarket: {max_parts: 0}\n", "providers.openmarket.max_parts: Input"),
        (
            "providers:\n  sinch: {max_parts: 4}\n",
            "providers.sinch.max_parts: Extra inputs are not permitted",
        ),
        ("providers:\n  sinch: {topik: x}\n", "providers.sinch.topik: Extra inputs"),
        ("- a list\n", "top level must be a mapping"),
        ("kafka: [\n", "while parsing"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), env={})
    assert message in str(info.value)


def test_environment_overrides_endpoints(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {bootstrap_servers: file:9092}\n")
    config = load(
        path,
        env={"MMS_KAFKA_BOOTSTRAP_SERVERS": "env:9092", "MMS_SCHEMA_REGISTRY_URL": "http://r"},
    )
    assert (config.kafka.bootstrap_servers, config.schema_registry.url) == ("env:9092", "http://r")


def test_only_enabled_providers_get_routes(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "providers:\n  bandwidth-v2: {enabled: true, path: /bw}\n  sinch: {enabled: false}\n",
        ),
        env={},
    )
    assert list(config.enabled()) == ["bandwidth-v2"]
    assert config.route_path("bandwidth-v2") == "/bw"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load(tmp_path / "absent.yaml", env={})


def test_parser_budgets_reach_the_translate_context(tmp_path: Path) -> None:
    config = load(
        write(
            tmp_path,
            "media: {root: " + str(tmp_path) + "}\n"
            "providers:\n  sinch: {enabled: true, max_elements: 7, max_events: 2, max_media: 0,"
            " max_recipients: 3}\n"
            "  openmarket: {enabled: true, max_parts: 4, max_part_bytes: 5}\n",
        ),
        env={},
    )
    by_name = {r.name: r.context for r in routes(config, env={})}
    limits = by_name["sinch"].limits
    assert (limits.max_elements, limits.max_events, limits.max_media) == (7, 2, 0)
    assert limits.max_recipients == 3
    assert by_name["openmarket"].options == PartLimits(max_parts=4, max_part_bytes=5)
    # Only the provider that stores media gets the store in its context.
    assert by_name["sinch"].media_store is None
    assert by_name["openmarket"].media_store is not None


def test_every_problem_of_a_config_is_named_at_once(tmp_path: Path) -> None:
    text = "server: {port: 0}\nproviders:\n  openmarket: {max_parts: 0, max_part_bytes: -1}\n"
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), env={})
    message = str(info.value)
    assert "3 problem(s)" in message
    for key in ("server.port", "providers.openmarket.max_parts", "openmarket.max_part_bytes"):
        assert f"  {key}" in message or f"  providers.{key}" in message, message


@pytest.mark.parametrize(
    ("auth", "warned"),
    [
        ("{}", True),
        ("{trusted_proxies: [10.0.0.0/8]}", True),
        ("{unauthenticated: true}", False),
        ("{allow_cidrs: [203.0.113.0/24]}", False),
        ("{token: {header: X-T, value: {env: T}}}", False),
    ],
)
def test_a_provider_open_to_anyone_is_warned_about(tmp_path: Path, auth: str, warned: bool) -> None:
    config = load(write(tmp_path, f"providers:\n  sinch: {{enabled: true, auth: {auth}}}\n"))
    assert bool(config.warnings()) == warned
