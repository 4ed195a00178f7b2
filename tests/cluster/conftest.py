"""Fixtures for the chart on a real API server: scripts/cluster.sh's loopback control plane.

scripts/cluster.sh builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
and kwok once into ~/.cache/mms-connector/cluster/ (about 10 minutes cold on 2 cores) and starts
them on 127.0.0.1; kwok plays the nodes, so pods are scheduled and reported Running and Ready but
no container runs. MMS_CLUSTER_BUILD=0 uses a cached build only. Without the cluster the tests
skip, except in CI (CI set). The Prometheus Operator's kinds are there (prometheus-crds.yaml).
The cluster is started once per session and stopped after it (left running when it was already
up before the session: MMS_CLUSTER_KEEP=1 keeps it either way).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tools import CHART, REPO, unavailable

CLUSTER_SCRIPT = REPO / "scripts" / "cluster.sh"
PROMETHEUS_CRDS = Path(__file__).with_name("prometheus-crds.yaml")
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))


def _secret(name: str, keys: list[str], kind: str = "Opaque") -> dict[str, Any]:
    data = {key: "c3RhbmQtaW4=" for key in keys}  # base64 of "stand-in"
    if kind == "kubernetes.io/dockerconfigjson":
        data = {".dockerconfigjson": "eyJhdXRocyI6e319"}  # {"auths":{}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": kind,
            "data": data}  # fmt: skip


def prerequisites(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The cluster objects a values file names and the chart does not create (the chart README's
    "Values that must match cluster objects"), made as the cluster's admin would make them."""
    made: list[dict[str, Any]] = []
    if name := values.get("priorityClassName"):
        made.append({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                     "metadata": {"name": name}, "value": 1000})  # fmt: skip
    for ref in values.get("imagePullSecrets") or []:
        made.append(_secret(ref["name"], [], "kubernetes.io/dockerconfigjson"))
    if name := values.get("existingSecret"):
        made.append(_secret(name, []))
    for files in values.get("secretFiles") or []:
        made.append(_secret(files["secretName"], [i["key"] for i in files.get("items") or []]))
    for volume in values.get("extraVolumes") or []:
        if secret := volume.get("secret"):
            made.append(_secret(secret["secretName"], [i["key"] for i in secret.get("items", [])]))
    for tls in (values.get("ingress") or {}).get("tls") or []:
        made.append(_secret(tls["secretName"], ["tls.crt", "tls.key"], "kubernetes.io/tls"))
    account = values.get("serviceAccount") or {}
    if account.get("create") is False and account.get("name"):
        made.append({"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": account["name"]}})  # fmt: skip
    return made


def _script(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(self, cmd: list[str], stdin: str | None = None, timeout: float = 180):
        return subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
            env=self.env, check=False,
        )  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 180):
        return self.run([str(self.kubectl_bin), *args], stdin=stdin, timeout=timeout)

    def get(self, *args: str) -> dict[str, Any]:
        proc = self.kubectl("get", "-o", "json", *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def apply(self, ns: str, objects: list[dict[str, Any]]) -> None:
        if not objects:
            return
        listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        proc = self.kubectl("apply", "--namespace", ns, "-f", "-", stdin=listed)
        assert proc.returncode == 0, proc.stderr

    def namespace(self, labels: dict[str, str] | None = None) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        proc = self.kubectl("create", "namespace", name)
        assert proc.returncode == 0, proc.stderr
        if labels:
            pairs = [f"{k}={v}" for k, v in labels.items()]
            proc = self.kubectl("label", "namespace", name, *pairs)
            assert proc.returncode == 0, proc.stderr
        return name


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    was_up = _script("status", timeout=60).returncode == 0
    proc = _script("up")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        unavailable(f"scripts/cluster.sh up failed (exit {proc.returncode}): {tail}")
    kubeconfig = Path(proc.stdout.strip().splitlines()[-1])
    bin_dir = Path(_script("build").stdout.strip().splitlines()[-1])
    found = Cluster(kubeconfig, bin_dir / "kubectl")
    crds = found.kubectl("apply", "--server-side", "-f", str(PROMETHEUS_CRDS))
    assert crds.returncode == 0, crds.stderr
    crds = found.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "-f", str(PROMETHEUS_CRDS)
    )
    assert crds.returncode == 0, crds.stderr
    try:
        yield found
    finally:
        if not was_up and os.environ.get("MMS_CLUSTER_KEEP") != "1":
            _script("down", timeout=120)
