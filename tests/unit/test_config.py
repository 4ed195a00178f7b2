"""Config loading: validation names the key and the problem; environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ConfigError, load


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("providers:\n  twilio: {enabled: true}\n", "unknown provider 'twilio'"),
        ("kafka: {bootstrap_servers: 1, acks: 0}\n", "kafka.acks: Extra inputs are not permitted"),
        ("providers:\n  sinch: {enabled: maybe}\n", "providers.sinch.enabled"),
        ("providers:\n  sinch: {deadline_seconds: 0}\n", "providers.sinch.deadline_seconds"),
        ("schema_registry: {compatibility: NONE}\n", "schema_registry.compatibility"),
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
            "providers:\n  sinch: {max_elements: 7, max_events: 2, max_media: 0, "
            "max_recipients: 3, max_parts: 4, max_part_bytes: 5}\n",
        )
    )
    limits = config.providers["sinch"].limits
    assert (limits.max_elements, limits.max_events, limits.max_media) == (7, 2, 0)
    assert (limits.max_recipients, limits.max_parts, limits.max_part_bytes) == (3, 4, 5)


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
