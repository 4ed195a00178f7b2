"""The config file the chart renders is one the connector's own loader accepts.

The ConfigMap's config.yaml is written out and loaded with connector.config.load, the same code
`mms-connector serve --config` runs in the pod, so a chart change the connector would refuse at
start-up fails here instead.
"""

from __future__ import annotations

import json
import typing
import warnings
from pathlib import Path

import pytest
import yaml

from connector import cli
from connector import config as config_mod
from connector.providers import PROVIDERS
from tests.helm.conftest import CHART, FULL_VALUES, Rendered, render, sets

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CHART_PROVIDERS = sorted(SCHEMA["properties"]["providers"]["properties"])


def load_rendered(rendered: Rendered, tmp_path: Path) -> config_mod.Config:
    path = tmp_path / "config.yaml"
    path.write_text(rendered.config_text)
    # env={}: what the file says, not what this machine's environment overrides.
    return config_mod.load(path, env={})


def test_default_config_loads(default_render: Rendered, tmp_path: Path) -> None:
    config = load_rendered(default_render, tmp_path)
    assert config.kafka.bootstrap_servers == "kafka:9092"
    assert config.schema_registry.url == "http://schema-registry:8081"
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8080)
    assert config.media.root == Path("/var/lib/mms-connector/media")
    assert config.enabled() == {}
    assert config.kafka.flush_timeout_seconds == 30


def test_full_config_loads(full_render: Rendered, full_values: dict, tmp_path: Path) -> None:
    config = load_rendered(full_render, tmp_path)
    assert config.kafka.bootstrap_servers == full_values["kafka"]["bootstrap_servers"]
    # librdkafka settings keep their types (Helm reads numbers as floats; the chart must not
    # turn 10485760 into 1.048576e+07).
    assert config.kafka.producer == full_values["kafka"]["producer"]
    assert config.kafka.producer["message.max.bytes"] == 10485760
    assert config.schema_registry.url == full_values["schema_registry"]["url"]
    assert config.schema_registry.compatibility == "FULL_TRANSITIVE"
    assert config.kafka.flush_timeout_seconds == 25.5
    assert config.server.max_in_flight == 500
    assert config.dead_letters.model_dump() == full_values["dead_letters"]
    assert config.dedupe.model_dump() == full_values["dedupe"]
    bandwidth = config.providers["bandwidth-v2"]
    assert bandwidth.model_dump(exclude_unset=True) == full_values["providers"]["bandwidth-v2"]
    assert config.route_path("bandwidth-v2") == "/callbacks/bandwidth/v2"
    # Disabled providers are left out of the file.
    assert list(config.providers) == ["bandwidth-v2"]


def test_check_config_accepts_the_rendered_file(
    full_render: Rendered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(full_render.config_text)
    assert cli.main(["check-config", str(path)]) == 0
    assert "bandwidth-v2 -> /callbacks/bandwidth/v2" in capsys.readouterr().out


@pytest.mark.parametrize("name", CHART_PROVIDERS)
def test_each_provider_renders_a_config_the_connector_loads(
    helm: Path, tmp_path: Path, name: str
) -> None:
    if name not in PROVIDERS:
        pytest.skip(f"the connector has no provider {name!r} yet (connector.providers.PROVIDERS)")
    rendered = render(
        helm,
        "-f",
        str(FULL_VALUES),
        *sets(
            f"providers.{name}.enabled=true",
            f"providers.{name}.topic=mms.{name}",
            f"providers.{name}.max_body_bytes=33554432",
            f"providers.{name}.default_country=GB",
            "shutdown.terminationGracePeriodSeconds=60",
        ),
    )
    config = load_rendered(rendered, tmp_path)
    provider = config.providers[name]
    assert provider.enabled and provider.topic == f"mms.{name}"
    assert provider.max_body_bytes == 33554432
    assert provider.default_country == "GB"
    assert name in config.enabled()


# --- the chart's values schema follows the connector's config schema ---------------------------


def _schema_keys(node: dict) -> set[str]:
    return set(node["properties"])


def _drift(chart: set[str], connector: set[str], what: str) -> None:
    """The chart must not offer a key the loader refuses; a key the connector has and the chart
    does not yet offer is reported (the chart needs updating) without failing other work."""
    assert chart <= connector, f"{what}: the loader refuses {sorted(chart - connector)}"
    if missing := connector - chart:
        warnings.warn(
            f"{what}: the chart does not offer {sorted(missing)} yet (helm/mms-connector)",
            stacklevel=2,
        )


def test_provider_settings_match_the_connector() -> None:
    provider = SCHEMA["definitions"]["provider"]
    _drift(_schema_keys(provider), set(config_mod.ProviderConfig.model_fields), "providers.<name>")


def test_other_settings_match_the_connector() -> None:
    props = SCHEMA["properties"]
    for section in ("dead_letters", "dedupe"):
        model = config_mod.Config.model_fields[section].annotation
        assert isinstance(model, type)
        _drift(_schema_keys(props[section]), set(model.model_fields), section)
    # host and port come from the chart (containerPort), the rest from values.
    chart_server = _schema_keys(props["server"]) | {"host", "port"}
    _drift(chart_server, set(config_mod.ServerConfig.model_fields), "server")
    sections = {
        "kafka",
        "schema_registry",
        "server",
        "media",
        "dead_letters",
        "dedupe",
        "providers",
    }
    _drift(sections, set(config_mod.Config.model_fields), "top level")
    _drift(_schema_keys(props["kafka"]), set(config_mod.KafkaConfig.model_fields), "kafka")
    _drift(
        _schema_keys(props["schema_registry"]),
        set(config_mod.RegistryConfig.model_fields),
        "schema_registry",
    )
    compat = props["schema_registry"]["properties"]["compatibility"]["enum"]
    assert set(compat) == set(typing.get_args(config_mod.Compatibility))


def test_chart_offers_every_connector_provider() -> None:
    _drift(set(CHART_PROVIDERS), set(CHART_PROVIDERS) | set(PROVIDERS), "providers")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert sorted(values["providers"]) == CHART_PROVIDERS
    assert all(p["enabled"] is False for p in values["providers"].values())
