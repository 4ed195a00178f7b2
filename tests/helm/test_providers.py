"""The chart names no provider: any provider of the connector (connector/providers/, discovered
there) gets a chart entry under its name with no chart edit. The connector checks a provider's own
options at start-up; test_config_file.py loads the rendered config of each provider it has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.providers import PROVIDERS
from tests.helm.conftest import (
    CHART,
    ingress_paths,
    open_providers,
    refused,
    render,
    render_notes,
    sets,
)

NEW_PROVIDER = "some-new-provider"  # a name the chart has never heard of


def test_the_chart_names_no_provider(default_values: dict[str, Any]) -> None:
    # A provider module in connector/providers/ is enough: the chart needs no edit for it.
    assert default_values["providers"] == {}
    files = [p for p in (CHART / "templates").rglob("*") if p.is_file()]
    files += [CHART / "values.schema.json", CHART / "values.yaml"]
    texts = {str(p.relative_to(CHART)): p.read_text() for p in files}
    for file, text in texts.items():
        named = [n for n in PROVIDERS if re.search(rf"\b{re.escape(n)}\b", text)]
        assert not named, f"{file} names {named}"


def test_a_provider_the_chart_never_heard_of(helm: Path, tmp_path: Path) -> None:
    args = sets(
        f"providers.{NEW_PROVIDER}.enabled=true",
        f"providers.{NEW_PROVIDER}.auth.unauthenticated=true",
        f"providers.{NEW_PROVIDER}.topic=mms.x",
        "ingress.enabled=true",
        "ingress.hosts[0]=mms.example.com",
    )
    rendered = render(helm, *args)
    config = yaml.safe_load(rendered.config_text)
    assert config["providers"] == {
        NEW_PROVIDER: {"enabled": True, "topic": "mms.x", "auth": {"unauthenticated": True}}
    }
    assert ingress_paths(rendered.one("Ingress")) == [
        ("mms.example.com", f"/callbacks/{NEW_PROVIDER}", "Exact")
    ]
    notes = render_notes(helm, tmp_path, *args)
    assert f"  {NEW_PROVIDER}  http://mms.example.com/callbacks/{NEW_PROVIDER}\n" in notes
    # Its topic is one the mirror reads (the connector derives source_topics from it).
    assert rendered.one("Deployment", "mirror")
    # Its own path, and a token in the path, as for any provider.
    rendered = render(
        helm,
        *args,
        *sets(
            f"providers.{NEW_PROVIDER}.path=/hooks/new",
            f"providers.{NEW_PROVIDER}.auth.token.in_path=true",
            f"providers.{NEW_PROVIDER}.auth.token.value.env=MMS_NEW_TOKEN",
            "secretEnv.MMS_NEW_TOKEN=x",
        ),
    )
    assert ingress_paths(rendered.one("Ingress")) == [("mms.example.com", "/hooks/new/", "Prefix")]


def test_a_new_provider_s_own_options_and_references(helm: Path, tmp_path: Path) -> None:
    enabled = open_providers(NEW_PROVIDER)
    # Options the chart does not know pass through as the scalars they are (the connector
    # checks them at start-up); integers stay integers, null is left out (its default).
    options = {"batch_bytes": 10485760, "strict": True, "ratio": 0.5, "region": "eu"}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"providers": {NEW_PROVIDER: options | {"spare": None}}}))
    config = yaml.safe_load(render(helm, "-f", str(values), *sets(*enabled)).config_text)
    assert config["providers"][NEW_PROVIDER] == {
        "enabled": True,
        "auth": {"unauthenticated": True},
        **options,
    }
    # The chart's checks apply to it as to any provider: auth said, references satisfiable,
    # the shared keys typed.
    assert f"set providers.{NEW_PROVIDER}.auth.unauthenticated: true" in refused(
        helm, *sets(f"providers.{NEW_PROVIDER}.enabled=true")
    )
    err = refused(
        helm,
        *sets(
            *enabled,
            f"providers.{NEW_PROVIDER}.auth.token.header=X-Token",
            f"providers.{NEW_PROVIDER}.auth.token.value.env=NOWHERE",
        ),
    )
    assert f"providers.{NEW_PROVIDER}.auth.token.value: environment variable NOWHERE" in err
    err = refused(helm, *sets(*enabled, f"providers.{NEW_PROVIDER}.auth.token.value=tok"))
    assert f"/providers/{NEW_PROVIDER}/auth/token/value" in err
    err = refused(helm, *sets(*enabled, f"providers.{NEW_PROVIDER}.deadline_seconds=0"))
    assert f"/providers/{NEW_PROVIDER}/deadline_seconds" in err


@pytest.mark.parametrize("name", ["Bad_Name", "UPPER", "-dash", "under_score"])
def test_a_bad_provider_name_is_refused(helm: Path, name: str) -> None:
    # Only names that make a plain /callbacks/<name> path (test_config_file.py checks every
    # provider of the connector has one).
    err = refused(helm, *sets(*open_providers(name)))
    assert f"additional properties '{name}' not allowed" in err
