"""Fixtures for the Helm chart tests: the chart rendered once per values set (the `helm`
fixture, tests/conftest.py, gives the binary: tests/tools.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import CHART

FULL_VALUES = CHART / "ci" / "full-values.yaml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
RELEASE = "mms"
NAMESPACE = "messaging"


@dataclass
class Rendered:
    """The manifests of one `helm template`, parsed."""

    docs: list[dict[str, Any]]
    text: str = field(repr=False)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, component: str = "connector") -> dict[str, Any]:
        """The one `kind` of a component: the receiver's ("connector") or the mirror's."""
        found = [d for d in self.all(kind) if component_of(d) == component]
        assert len(found) == 1, f"expected one {component} {kind}, got {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["spec"]["containers"]
        return container

    @property
    def mirror_pod(self) -> dict[str, Any]:
        return self.one("Deployment", "mirror")["spec"]["template"]

    @property
    def mirror_container(self) -> dict[str, Any]:
        (container,) = self.mirror_pod["spec"]["containers"]
        return container

    @property
    def config_text(self) -> str:
        return self.one("ConfigMap")["data"]["config.yaml"]


def crd_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schemas of tests/helm/schemas/ (objects of custom resource kinds, which the
    Kubernetes API schemas do not cover), by the kind each one is for (its kind's const)."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        schemas[schema["properties"]["kind"]["const"]] = schema
    return schemas


def component_of(doc: dict[str, Any]) -> str:
    return (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component", "")


def sets(*assignments: str) -> list[str]:
    """--set arguments: sets("a.b=1", "c=x") -> ["--set", "a.b=1", "--set", "c=x"]."""
    return [arg for a in assignments for arg in ("--set", a)]


def open_providers(*names: str) -> list[str]:
    """Assignments that enable providers with no authentication, said explicitly (the chart
    refuses an enabled provider that has none and does not say so)."""
    return [
        a
        for n in names
        for a in (f"providers.{n}.enabled=true", f"providers.{n}.auth.unauthenticated=true")
    ]


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(helm: Path, *args: str) -> Rendered:
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert proc.returncode == 0, f"helm template {' '.join(args)} failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return Rendered(docs, proc.stdout)


def refused(helm: Path, *args: str) -> str:
    """Render values the chart must refuse; returns helm's error."""
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert proc.returncode != 0, f"helm template {' '.join(args)} was accepted"
    return proc.stderr


def render_notes(helm: Path, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` would print it (which needs a cluster): rendered through a
    throwaway copy of the chart where a template includes it."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
    )
    proc = run_helm(
        helm,
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/zz-notes.yaml",
        *args,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)["notes"]


def ingress_paths(ingress: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """An Ingress's (host, path, pathType) triples, in order."""
    return [
        (rule.get("host"), p["path"], p["pathType"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    ]


@pytest.fixture(scope="session")
def default_render(helm: Path) -> Rendered:
    return render(helm)


@pytest.fixture(scope="session")
def full_render(helm: Path) -> Rendered:
    return render(helm, "-f", str(FULL_VALUES))


@pytest.fixture(scope="session")
def filesystem_render(helm: Path) -> Rendered:
    """The filesystem media store, chosen explicitly (the chart's default is s3)."""
    return render(helm, *sets("media.store=filesystem"))


@pytest.fixture(scope="session", params=["default", "full"])
def any_render(request: pytest.FixtureRequest) -> Rendered:
    """Each test using this runs for the default values and for ci/full-values.yaml."""
    return request.getfixturevalue(f"{request.param}_render")


@pytest.fixture(scope="session")
def full_values() -> dict[str, Any]:
    return yaml.safe_load(FULL_VALUES.read_text())


@pytest.fixture(scope="session")
def default_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())
