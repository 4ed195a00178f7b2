"""Fixtures for the Helm chart tests: a helm binary, and the chart rendered once per values set.

helm comes from $MMS_HELM when set, else from scripts/helm.sh, which builds it from the Go module
proxy into ~/.cache/mms-connector/helm/<version>/ the first time (a few minutes) and reuses it
afterwards (MMS_HELM_BUILD=0: use a cached build only, never build). Without helm the tests
skip, except in CI (CI set), where a chart that was not checked must not look green.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mms-connector"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
HELM_SCRIPT = REPO / "scripts" / "helm.sh"
RELEASE = "mms"
NAMESPACE = "messaging"


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where everything these tests need is installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: not skipping)", pytrace=False)
    pytest.skip(reason)


def _obtain_helm() -> Path:
    if explicit := os.environ.get("MMS_HELM"):
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            unavailable(f"MMS_HELM={explicit} is not an executable file")
        return path
    cmd = ["bash", str(HELM_SCRIPT)]
    if os.environ.get("MMS_HELM_BUILD") == "0":
        cmd.append("--cached-only")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"helm could not be obtained: {exc}")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        unavailable(f"helm could not be obtained (scripts/helm.sh exit {proc.returncode}): {tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def helm() -> Path:
    return _obtain_helm()


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
