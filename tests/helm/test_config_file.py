"""The config file the chart renders is one the connector's own loader accepts.

The ConfigMap's config.yaml is written out and loaded with connector.config.load, the same code
`mms-connector serve --config` runs in the pod, so a chart change the connector would refuse at
start-up fails here instead. The app is then built from it with the environment the chart gives
the pod, which resolves every {env: VAR} reference of the providers' auth.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import typing
import warnings
from pathlib import Path

import pytest
import yaml
from starlette.routing import Route
from starlette.testclient import TestClient

from connector import cli
from connector import config as config_mod
from connector.app import create_app
from connector.providers import PROVIDERS
from tests.helm.conftest import FULL_VALUES, Rendered, render, sets
from tests.signing import key_for
from tests.tools import CHART

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
# The chart names no provider: every provider the connector has is one it renders.
PROVIDER_NAMES = sorted(PROVIDERS)
# The providers that sign their callbacks (auth.signature applies to them only).
SIGNING = [n for n in PROVIDER_NAMES if PROVIDERS[n].signature is not None]
NOT_SIGNING = [n for n in PROVIDER_NAMES if PROVIDERS[n].signature is None]


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
    # The chart's default store is S3, on the default credential chain (no keys in the file).
    assert config.media.store == "s3"
    assert config.media.s3 == config_mod.S3StoreConfig(bucket="mms-media", region="us-east-1")
    assert config.mirror == config_mod.MirrorConfig()
    assert config.enabled() == {}
    assert config.kafka.flush_timeout_seconds == 30


def test_full_config_loads(full_render: Rendered, full_values: dict, tmp_path: Path) -> None:
    config = load_rendered(full_render, tmp_path)
    assert config.kafka.bootstrap_servers == full_values["kafka"]["bootstrap_servers"]
    # librdkafka settings keep their types (Helm reads numbers as floats; the chart must not
    # turn 10485760 into 1.048576e+07).
    assert config.kafka.producer == full_values["kafka"]["producer"]
    assert config.kafka.producer["message.max.bytes"] == 10485760
    assert config.kafka.common == full_values["kafka"]["common"]
    assert config.kafka.common["reconnect.backoff.max.ms"] == 10000
    assert config.kafka.common["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert {k: v.model_dump(exclude_none=True) for k, v in config.kafka.secrets.items()} == {
        "sasl.password": {"env": "MMS_KAFKA_PASSWORD"}
    }
    registry = config.schema_registry
    assert registry.url == full_values["schema_registry"]["url"]
    assert registry.compatibility == "FULL_TRANSITIVE"
    assert registry.username == "mms-connector"
    assert registry.password == config_mod.Secret(
        file=Path("/etc/mms-connector-secrets/registry/password")
    )
    assert registry.timeout_seconds == 15
    assert config.kafka.flush_timeout_seconds == 25.5
    assert config.server.max_in_flight == 500
    s3 = config.media.s3.model_dump(mode="json", exclude_unset=True)
    assert (config.media.store, s3) == ("s3", full_values["media"]["s3"])
    chart_only = set(SCHEMA["properties"]["mirror"]["properties"]) - set(
        config_mod.MirrorConfig.model_fields
    )
    mirror = {k: v for k, v in full_values["mirror"].items() if k not in chart_only}
    assert config.mirror.model_dump() == mirror
    assert config.dead_letters.model_dump() == full_values["dead_letters"]
    assert config.dedupe.model_dump(exclude_unset=True, exclude_none=True) == full_values["dedupe"]
    # Every enabled provider's settings, auth and its own options included, as the values give
    # them.
    enabled = sorted(n for n, p in full_values["providers"].items() if p["enabled"])
    for name in enabled:
        provider = config.providers[name].model_dump(mode="json", exclude_unset=True)
        assert provider == full_values["providers"][name], name
    assert config.route_path("bandwidth-v2") == "/callbacks/bandwidth/v2"
    openmarket = config.providers["openmarket"].auth
    assert openmarket.token is not None and openmarket.token.in_path
    assert openmarket.token.header is None
    assert ipaddress.ip_address("2001:db8:10::1") in openmarket.allow_cidrs[1]
    sinch = config.providers["sinch"].auth.token
    assert sinch is not None and sinch.header == "X-Callback-Token" and not sinch.in_path
    # Disabled providers are left out of the file.
    assert enabled == ["bandwidth-v2", "openmarket", "sinch"]
    assert list(config.providers) == enabled


def pod_env(rendered: Rendered) -> dict[str, str]:
    """The environment the chart gives the connector container, with dummy values: the keys of
    the chart-created Secret it takes whole (envFrom) and its plain env entries."""
    container = rendered.container
    secrets = {s["metadata"]["name"]: s for s in rendered.all("Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        secret = secrets[source["secretRef"]["name"]]  # chart-created: its keys are known
        env |= {name: f"dummy-{name}" for name in secret["data"]}
    env |= {e["name"]: e.get("value", f"dummy-{e['name']}") for e in container.get("env", [])}
    return env


def test_app_builds_from_the_rendered_config_and_pod_env(
    full_render: Rendered, tmp_path: Path
) -> None:
    config = load_rendered(full_render, tmp_path)
    env = pod_env(full_render)
    # Resolves every provider secret (and fails naming the key if a variable is missing); the
    # lifespan, which connects to Kafka and the registry, is not started.
    app = create_app(config, env=env)
    paths = {r.path for r in app.routes if isinstance(r, Route)}
    assert paths >= {
        "/callbacks/bandwidth/v2",
        "/callbacks/openmarket/{token}",
        "/callbacks/sinch",
        "/healthz",
    }
    # The Kafka and registry secrets resolve at start-up from the same environment (env) or
    # from the mounted Secret (file; test_chart.py checks the mount).
    kafka = config.kafka.client_settings(env)
    assert kafka["sasl.password"] == env["MMS_KAFKA_PASSWORD"]
    assert kafka["sasl.username"] == "mms-connector"
    secret_file = tmp_path / "password"
    secret_file.write_text("registry-pw\n")
    assert config.schema_registry.password is not None
    config.schema_registry.password.file = secret_file
    registry = config.schema_registry.client_settings(env)
    assert registry["basic.auth.user.info"] == "mms-connector:registry-pw"
    assert registry["timeout"] == 15

    # The routes check the credentials the chart wires. Without the lifespan nothing can be
    # kept, so a request that got through auth is answered 503 (starting); 401/403 that it
    # did not.
    client = TestClient(app, client=("10.244.3.4", 40000))  # an ingress controller pod
    huge = {"content-length": str(10**9)}

    def post(path: str, **headers: str) -> int:
        return client.post(path, content=iter([b"{}"]), headers=huge | headers).status_code

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    bandwidth = "/callbacks/bandwidth/v2"
    user = "bandwidth-user-4f1c"
    assert post(bandwidth, authorization=basic(user, env["MMS_BANDWIDTH_V2_PASSWORD"])) == 503
    assert post(bandwidth, authorization=basic(user, "wrong")) == 401
    assert post("/callbacks/sinch", **{"x-callback-token": env["MMS_SINCH_TOKEN"]}) == 503
    assert post("/callbacks/sinch", **{"x-callback-token": "wrong"}) == 401
    openmarket = "/callbacks/openmarket/" + env["MMS_OPENMARKET_TOKEN"]
    provider_ip = {"x-forwarded-for": "198.51.100.7, 203.0.113.9"}  # left hops are ignored
    assert post(openmarket, **provider_ip) == 503
    assert post("/callbacks/openmarket/wrong", **provider_ip) == 401
    assert post(openmarket, **{"x-forwarded-for": "198.51.100.7"}) == 403  # not allowed
    assert post("/callbacks/openmarket", **provider_ip) == 404  # the token is the last segment


@pytest.mark.parametrize(
    "missing", ["MMS_BANDWIDTH_V2_PASSWORD", "MMS_SINCH_TOKEN", "MMS_OPENMARKET_TOKEN"]
)
def test_app_refuses_to_build_without_a_wired_variable(
    full_render: Rendered, tmp_path: Path, missing: str
) -> None:
    # The check above has teeth: a variable the config names but the pod lacks stops the app.
    config = load_rendered(full_render, tmp_path)
    env = pod_env(full_render)
    del env[missing]
    with pytest.raises(config_mod.ConfigError, match=missing):
        create_app(config, env=env)


def test_chart_secret_carries_the_values(full_render: Rendered, full_values: dict) -> None:
    secret = full_render.one("Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == full_values["secretEnv"]
    assert set(decoded) <= set(pod_env(full_render))


def test_check_config_accepts_the_rendered_file(
    full_render: Rendered, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(full_render.config_text)
    assert cli.main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "bandwidth-v2 -> /callbacks/bandwidth/v2" in out
    assert "sinch -> /callbacks/sinch" in out


@pytest.mark.parametrize("name", PROVIDER_NAMES)
def test_each_provider_renders_a_config_the_connector_loads(
    helm: Path, tmp_path: Path, name: str
) -> None:
    rendered = render(
        helm,
        "-f",
        str(FULL_VALUES),
        *sets(
            f"providers.{name}.enabled=true",
            f"providers.{name}.auth.unauthenticated=true",
            f"providers.{name}.topic=mms.{name}",
            f"providers.{name}.max_body_bytes=33554432",
            f"providers.{name}.default_country=GB",
        ),
    )
    config = load_rendered(rendered, tmp_path)
    provider = config.providers[name]
    assert provider.enabled and provider.topic == f"mms.{name}"
    assert provider.max_body_bytes == 33554432
    assert provider.default_country == "GB"
    assert name in config.enabled()


@pytest.mark.parametrize("name", PROVIDER_NAMES)
def test_each_provider_enabled_with_the_connector_s_defaults(
    helm: Path, tmp_path: Path, name: str
) -> None:
    # No topic or other setting given: the chart leaves them out, the connector's defaults apply.
    rendered = render(
        helm, *sets(f"providers.{name}.enabled=true", f"providers.{name}.auth.unauthenticated=true")
    )
    config = load_rendered(rendered, tmp_path)
    assert config.providers[name].topic == config_mod.ProviderConfig().topic
    assert list(config.enabled()) == [name]


def test_media_fetch_authorization_loads_in_the_connector(helm: Path, tmp_path: Path) -> None:
    rendered = render(
        helm,
        *sets(
            "providers.infobip.enabled=true",
            "providers.infobip.auth.unauthenticated=true",
            "providers.infobip.media_fetch.authorization.env=MMS_INFOBIP_MEDIA_AUTH",
            "providers.infobip.media_fetch.allowed_hosts={*.api.infobip.com}",
            "secretEnv.MMS_INFOBIP_MEDIA_AUTH=App 0123abcd",
        ),
    )
    fetch = load_rendered(rendered, tmp_path).providers["infobip"].media_fetch
    assert fetch.authorization == config_mod.Secret(env="MMS_INFOBIP_MEDIA_AUTH")
    assert (fetch.username, fetch.password) == (None, None)
    assert fetch.allowed_hosts == ["*.api.infobip.com"]


def test_options_the_schema_lets_through_are_checked_by_the_connector(
    helm: Path, tmp_path: Path
) -> None:
    # The chart types the keys every provider has; a provider's own options are scalars it
    # passes on, so a misspelt or foreign one is the loader's to refuse (at start-up, or
    # `mms-connector check-config` on `helm template` output before).
    name = PROVIDER_NAMES[0]
    rendered = render(
        helm,
        *sets(
            f"providers.{name}.enabled=true",
            f"providers.{name}.auth.unauthenticated=true",
            f"providers.{name}.maxBodyBytes=3",
        ),
    )
    with pytest.raises(config_mod.ConfigError, match="maxBodyBytes"):
        load_rendered(rendered, tmp_path)


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
    defs = SCHEMA["definitions"]
    provider = defs["provider"]
    # The keys every provider has; a provider's own options are scalars the connector checks.
    _drift(_schema_keys(provider), set(config_mod.ProviderConfig.model_fields), "providers.<name>")
    assert provider["additionalProperties"] == {
        "type": ["string", "number", "integer", "boolean", "null"]
    }
    providers = SCHEMA["properties"]["providers"]
    assert providers["patternProperties"] == {
        "^[a-z0-9][a-z0-9-]*$": {"$ref": "#/definitions/provider"}
    }
    assert providers["additionalProperties"] is False
    assert "properties" not in providers  # no provider by name
    auth = defs["auth"]
    _drift(_schema_keys(auth), set(config_mod.AuthConfig.model_fields), "providers.<name>.auth")
    for key, model in [
        ("basic", config_mod.BasicAuthConfig),
        ("token", config_mod.TokenAuthConfig),
        ("signature", config_mod.SignatureConfig),
    ]:
        _drift(_schema_keys(auth["properties"][key]), set(model.model_fields), f"auth.{key}")


def _json_types(prop: dict) -> set[str]:
    """The JSON types a property of a pydantic model's JSON schema may take."""
    if "anyOf" in prop:
        return set().union(*(_json_types(p) for p in prop["anyOf"]))
    if "type" in prop:
        return set(prop["type"]) if isinstance(prop["type"], list) else {prop["type"]}
    return {"object"}  # a $ref: a model


@pytest.mark.parametrize("name", PROVIDER_NAMES)
def test_each_provider_s_own_options_can_be_given_through_the_chart(name: str) -> None:
    # The chart passes a provider's own options on as scalars, untyped: that holds for every
    # provider only while their options are scalars and not one of the keys it types.
    provider = SCHEMA["definitions"]["provider"]
    scalars = set(provider["additionalProperties"]["type"])
    options = PROVIDERS[name].options.model_json_schema().get("properties", {})
    for key, prop in options.items():
        assert key not in _schema_keys(provider), f"{name}.{key}: the chart types it otherwise"
        types = _json_types(prop)
        assert types <= scalars, f"{name}.{key}: {sorted(types)}, the chart passes only scalars"


def test_secret_references_match_the_connector() -> None:
    ref = SCHEMA["definitions"]["secretRef"]
    assert _schema_keys(ref) == set(config_mod.Secret.model_fields)
    assert ref["additionalProperties"] is False
    # Every place where the connector takes a Secret, the chart takes a reference only.
    props = SCHEMA["properties"]
    auth = SCHEMA["definitions"]["auth"]["properties"]
    secret_ref = {"$ref": "#/definitions/secretRef"}
    assert props["kafka"]["properties"]["secrets"]["patternProperties"] == {
        "^[a-z][a-z0-9._]*$": secret_ref
    }
    assert secret_ref in props["schema_registry"]["properties"]["password"]["oneOf"]
    assert auth["basic"]["properties"]["password"] == secret_ref
    assert auth["token"]["properties"]["value"] == secret_ref
    assert auth["signature"]["properties"]["keys"]["items"] == secret_ref


def test_signature_bounds_match_the_connector() -> None:
    chart = SCHEMA["definitions"]["auth"]["properties"]["signature"]
    connector = config_mod.SignatureConfig.model_json_schema()
    assert chart["required"] == connector["required"] == ["keys"]
    assert chart["additionalProperties"] is False
    keys, chart_keys = connector["properties"]["keys"], chart["properties"]["keys"]
    assert (chart_keys["minItems"], chart_keys["maxItems"]) == (keys["minItems"], keys["maxItems"])
    age, chart_age = (
        connector["properties"]["max_age_seconds"],
        chart["properties"]["max_age_seconds"],
    )
    # Optional in the connector: its bounds are on the number branch of anyOf.
    (age,) = [branch for branch in age.get("anyOf", [age]) if branch.get("type") == "number"]
    assert chart_age["exclusiveMinimum"] == age["exclusiveMinimum"]
    assert chart_age["maximum"] == age["maximum"]


def test_media_and_mirror_settings_match_the_connector() -> None:
    props = SCHEMA["properties"]
    media = props["media"]["properties"]
    # volume is the chart's (the filesystem store's volume); root follows the container layout.
    _drift(set(media) - {"volume"} | {"root"}, set(config_mod.MediaConfig.model_fields), "media")
    _drift(_schema_keys(media["s3"]), set(config_mod.S3StoreConfig.model_fields), "media.s3")
    s3 = media["s3"]["properties"]
    secret_ref = {"$ref": "#/definitions/secretRef"}
    assert secret_ref in s3["access_key_id"]["oneOf"]
    assert secret_ref in s3["secret_access_key"]["oneOf"]
    fetch = SCHEMA["definitions"]["mediaFetch"]
    _drift(_schema_keys(fetch), set(config_mod.MediaFetchConfig.model_fields), "media_fetch")
    assert secret_ref in fetch["properties"]["password"]["oneOf"]
    assert secret_ref in fetch["properties"]["authorization"]["oneOf"]
    chart_only = {
        "enabled",
        "replicaCount",
        "port",
        "resources",
        "probes",
        "autoscaling",
        "podDisruptionBudget",
        "terminationGracePeriodSeconds",
    }
    mirror = _schema_keys(props["mirror"]) - chart_only
    _drift(mirror, set(config_mod.MirrorConfig.model_fields), "mirror")


def test_the_filesystem_store_loads_at_the_container_path(
    filesystem_render: Rendered, tmp_path: Path
) -> None:
    config = load_rendered(filesystem_render, tmp_path)
    assert config.media.store == "filesystem"
    assert config.media.root == Path("/var/lib/mms-connector/media")


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
        "mirror",
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
    # By name pattern, not by list: a provider added to the connector needs no chart edit.
    (pattern,) = SCHEMA["properties"]["providers"]["patternProperties"]
    for name in PROVIDER_NAMES:
        assert re.fullmatch(pattern, name), f"the chart refuses the provider name {name!r}"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["providers"] == {}  # none enabled, none named


# --- request signatures ------------------------------------------------------------------------


def _signature_render(
    helm: Path, tmp_path: Path, name: str, signature: dict, **env: str
) -> Rendered:
    """A render enabling `name` with only auth.signature (a values file: keys hold = + /)."""
    values = {
        "providers": {name: {"enabled": True, "auth": {"signature": signature}}},
        "secretEnv": env,
    }
    path = tmp_path / "signature-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render(helm, "-f", str(path))


def chart_env(rendered: Rendered) -> dict[str, str]:
    """The environment the pod gets from the chart-created Secret, with its real values."""
    secret = rendered.one("Secret")
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


@pytest.mark.parametrize("name", SIGNING[:1])  # the first that signs; skipped while none does
def test_a_signing_provider_s_signature_loads_and_builds(
    helm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    mechanism = PROVIDERS[name].signature
    assert mechanism is not None
    current, upcoming = key_for(mechanism, "current"), key_for(mechanism, "upcoming")
    url = f"https://mms.example.com/callbacks/{name}" if mechanism.signs_url else None
    max_age = 120 if mechanism.signs_time else None
    # The keys this provider's mechanism takes, and no other (the connector refuses them).
    signature = {
        "keys": [{"env": "MMS_SIGNATURE_KEY"}, {"env": "MMS_SIGNATURE_NEXT_KEY"}],
        **({"url": url} if url else {}),
        **({"max_age_seconds": max_age} if max_age else {}),
    }
    rendered = _signature_render(
        helm,
        tmp_path,
        name,
        signature,
        MMS_SIGNATURE_KEY=current.config,
        MMS_SIGNATURE_NEXT_KEY=upcoming.config,
    )
    config = load_rendered(rendered, tmp_path)
    loaded = config.providers[name].auth.signature
    assert loaded is not None and loaded.url == url and loaded.max_age_seconds == max_age
    assert loaded.keys == [
        config_mod.Secret(env="MMS_SIGNATURE_KEY"),
        config_mod.Secret(env="MMS_SIGNATURE_NEXT_KEY"),
    ]
    assert not config.providers[name].auth.open_to_anyone
    # check-config accepts it, with no warning (neither "anyone can post" nor "not set").
    path = tmp_path / "config.yaml"
    assert cli.main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert f"{name} -> /callbacks/{name}" in captured.out
    # The app resolves and parses both keys from the environment the chart gives the pod.
    env = chart_env(rendered)
    app = create_app(config, env=env)
    assert f"/callbacks/{name}" in {r.path for r in app.routes if isinstance(r, Route)}
    del env["MMS_SIGNATURE_NEXT_KEY"]
    with pytest.raises(config_mod.ConfigError, match=rf"providers.{name}.auth.signature.keys.1"):
        create_app(config, env=env)
    if mechanism.signs_url:
        # The connector, not the schema, knows a provider signs the URL: check-config tells.
        rendered = _signature_render(
            helm, tmp_path, name, {"keys": signature["keys"]}, **chart_env(rendered)
        )
        with pytest.raises(config_mod.ConfigError, match=r"auth\.signature\.url"):
            load_rendered(rendered, tmp_path)


@pytest.mark.parametrize("name", NOT_SIGNING[:1])
def test_a_signature_for_a_provider_that_does_not_sign_is_the_connector_s_to_refuse(
    helm: Path, tmp_path: Path, name: str
) -> None:
    # The chart is generic (it knows no provider's mechanism): it renders the signature, and
    # the loader (check-config before installing, the pod at start-up) refuses it.
    rendered = _signature_render(
        helm, tmp_path, name, {"keys": [{"env": "MMS_SIGNATURE_KEY"}]}, MMS_SIGNATURE_KEY="k"
    )
    assert yaml.safe_load(rendered.config_text)["providers"][name]["auth"] == {
        "signature": {"keys": [{"env": "MMS_SIGNATURE_KEY"}]}
    }
    with pytest.raises(config_mod.ConfigError, match="does not sign"):
        load_rendered(rendered, tmp_path)
