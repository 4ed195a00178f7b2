"""The chart on a real API server (scripts/cluster.sh): what `helm template` and schema checks
cannot show. Server-side dry-run of every rendered object, and the life of a release with kwok
nodes in a namespace enforcing Pod Security `restricted`: install, `helm test`, an upgrade that
rolls the pods, uninstall. Once with default values and once with each ci/*.yaml, in a namespace
holding what that values file expects the cluster to have (conftest.prerequisites).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import CI_VALUES, Cluster, prerequisites
from tests.tools import CHART

RELEASE = "mms"
# helm's value arguments for each case.
VALUES = [pytest.param([], id="default")] + [
    pytest.param(["-f", str(p)], id=p.stem) for p in CI_VALUES
]
# Kinds the chart creates that are namespaced; what `helm uninstall` must leave none of.
OWNED_KINDS = (
    "deployments,replicasets,pods,services,configmaps,secrets,serviceaccounts,"
    "poddisruptionbudgets,horizontalpodautoscalers,networkpolicies,ingresses,"
    "persistentvolumeclaims,servicemonitors,prometheusrules"
)
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# What a values file with every optional part on must have made, beside the receiver.
OPTIONAL_KINDS = {
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "ServiceMonitor",
    "PrometheusRule",
}


def values_of(args: list[str]) -> dict[str, Any]:
    return yaml.safe_load(Path(args[1]).read_text()) if args else {}


def prepared(cluster: Cluster, args: list[str], labels: dict[str, str] | None = None) -> str:
    """A new namespace holding what the values file expects to find there."""
    ns = cluster.namespace(labels)
    cluster.apply(ns, prerequisites(values_of(args)))
    return ns


def helm_run(cluster: Cluster, helm: Path, *args: str, timeout: float = 300):
    return cluster.run([str(helm), *args], timeout=timeout)


def warnings(cluster: Cluster, ns: str) -> str:
    """Warnings of the namespace (FailedCreate of a ReplicaSet says why pods were refused)."""
    proc = cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", "type=Warning",
        "-o", "custom-columns=KIND:.involvedObject.kind,REASON:.reason,MESSAGE:.message",
    )  # fmt: skip
    return proc.stdout + proc.stderr


def released(cluster: Cluster, helm: Path, ns: str) -> tuple[str, set[tuple[str, str]]]:
    """The release's manifest, and (kind, name) of each object in it."""
    proc = helm_run(cluster, helm, "get", "manifest", RELEASE, "--namespace", ns)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return proc.stdout, {(d["kind"], d["metadata"]["name"]) for d in docs}


def live_pods(cluster: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    items = cluster.get("pods", "-n", ns)["items"]
    return {p["metadata"]["name"]: p for p in items if not p["metadata"].get("deletionTimestamp")}


def not_ready(deployment: dict[str, Any]) -> bool:
    status = deployment["status"]
    return (
        status.get("readyReplicas") != deployment["spec"]["replicas"]
        or status.get("observedGeneration") != deployment["metadata"]["generation"]
    )


def leftovers(cluster: Cluster, ns: str) -> list[str]:
    proc = cluster.kubectl(
        "get", OWNED_KINDS, "-n", ns, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name"
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.parametrize("values", VALUES)
def test_every_rendered_object_passes_server_side_dry_run(cluster: Cluster, helm, values):
    ns = prepared(cluster, values)
    rendered = helm_run(cluster, helm, "template", RELEASE, str(CHART), "--namespace", ns, *values)
    assert rendered.returncode == 0, rendered.stderr
    kinds = sorted({d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d})
    proc = cluster.kubectl(
        "apply", "--dry-run=server", "--namespace", ns, "-f", "-", stdin=rendered.stdout
    )
    assert proc.returncode == 0, f"kinds {kinds}; the API server refused:\n{proc.stderr}"


@pytest.mark.parametrize("values", VALUES)
def test_release_lifecycle_under_pod_security_restricted(cluster: Cluster, helm, values):
    ns = prepared(cluster, values, RESTRICTED)

    # install: every object of the manifest is there, every pod admitted, scheduled and Ready
    proc = helm_run(
        cluster, helm, "install", RELEASE, str(CHART), "--namespace", ns, "--wait",
        "--timeout", "90s", *values,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stderr}\nwarnings:\n{warnings(cluster, ns)}"
    manifest, objects = released(cluster, helm, ns)
    found = cluster.kubectl("get", "--namespace", ns, "-f", "-", "-o", "json", stdin=manifest)
    assert found.returncode == 0, found.stderr
    listed = json.loads(found.stdout)
    items = listed["items"] if listed.get("kind") == "List" else [listed]
    assert {(i["kind"], i["metadata"]["name"]) for i in items} == objects
    # With autoscaling the HPA scales each Deployment up to minReplicas after it was created
    # (`helm install --wait` may return before): every pod it wants ends up Ready.
    deadline = time.monotonic() + 90
    while True:
        deployments = cluster.get("deployments", "-n", ns)["items"]
        unready = [d["status"] for d in deployments if not_ready(d)]
        if not unready or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert unready == []
    assert "FailedCreate" not in warnings(cluster, ns)
    if values:  # every optional part on, the mirror too
        assert {kind for kind, _ in objects} >= OPTIONAL_KINDS, objects
        names = {d["metadata"]["name"] for d in deployments}
        assert names == {"mms-callbacks", "mms-callbacks-mirror"}

    # helm test: the hook pod is admitted, scheduled, waited for, and removed once it succeeded
    proc = helm_run(cluster, helm, "test", RELEASE, "--namespace", ns, "--timeout", "2m")
    assert proc.returncode == 0, f"{proc.stderr}\nwarnings:\n{warnings(cluster, ns)}"
    assert "Phase:          Succeeded" in proc.stdout, proc.stdout
    hooks = cluster.get("pods", "-n", ns, "-l", "app.kubernetes.io/component=test")["items"]
    assert all(p["metadata"].get("deletionTimestamp") for p in hooks), hooks

    # upgrade with a config change: each Deployment's checksum changes, its pods are replaced
    def checksums() -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/config"
            ]
            for d in cluster.get("deployments", "-n", ns)["items"]
        }

    before, old_pods = checksums(), set(live_pods(cluster, ns))
    proc = helm_run(
        cluster, helm, "upgrade", RELEASE, str(CHART), "--namespace", ns, "--wait",
        "--timeout", "3m", *values, "--set", "server.max_in_flight=123",
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stderr}\nwarnings:\n{warnings(cluster, ns)}"
    after = checksums()
    assert before.keys() == after.keys()
    assert all(before[name] != after[name] for name in before), (before, after)
    # Old pods are terminating (kwok removes them after their grace period); the live ones are
    # all new, and as many as the Deployments want.
    deadline = time.monotonic() + 60
    while (pods := live_pods(cluster, ns)).keys() & old_pods and time.monotonic() < deadline:
        time.sleep(1)
    assert not pods.keys() & old_pods
    wanted = sum(d["spec"]["replicas"] for d in cluster.get("deployments", "-n", ns)["items"])
    assert len(pods) == wanted

    # uninstall: nothing of the release is left once the pods' grace periods have run out
    proc = helm_run(cluster, helm, "uninstall", RELEASE, "--namespace", ns, "--wait")
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + 150
    while (left := leftovers(cluster, ns)) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == []
