"""The Helm chart: lint, Kubernetes API schemas, security, probes, rollouts, exposure, values."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector import config as config_mod
from connector.providers import PROVIDERS
from tests.helm.conftest import (
    CHART,
    FULL_VALUES,
    NAMESPACE,
    Rendered,
    component_of,
    crd_schemas,
    ingress_paths,
    open_providers,
    refused,
    render,
    render_notes,
    run_helm,
    sets,
)
from tests.tools import unavailable

# The chart's kubeVersion floor and the newest API the validator knows.
KUBE_VERSIONS = ["1.27", "latest"]
# Every provider the connector has: the chart names none of them.
PROVIDER_NAMES = sorted(PROVIDERS)
INTERNAL_PATHS = {"/healthz", "/readyz", "/metrics", "/"}

# ServiceMonitor and PrometheusRule are Prometheus Operator CRDs, so the Kubernetes schemas do not
# cover them: tests/helm/schemas/ has the parts of them the chart uses, closed.
CRD_SCHEMAS = crd_schemas()


# --- lint and API schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("values", ["default", "full"])
def test_helm_lint_strict(helm: Path, values: str) -> None:
    args = ["-f", str(FULL_VALUES)] if values == "full" else []
    proc = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_match_the_kubernetes_api(any_render: Rendered, kube_version: str) -> None:
    try:
        import jsonschema
        import kubernetes_validate
    except ImportError:
        unavailable("kubernetes-validate is not installed (pip install kubernetes-validate)")
    version = kubernetes_validate.latest_version() if kube_version == "latest" else kube_version
    for doc in any_render.docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            if doc["kind"] in CRD_SCHEMAS:
                jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])
                # Its metadata is an ordinary ObjectMeta: check it as one.
                meta_only = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
                kubernetes_validate.validate(meta_only, version, strict=True)
            else:
                kubernetes_validate.validate(doc, version, strict=True)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{where} is not valid for Kubernetes {version}:\n{exc}")


def test_crd_schemas_are_closed(full_render: Rendered) -> None:
    try:
        import jsonschema
    except ImportError:
        unavailable("jsonschema is not installed (pip install kubernetes-validate)")
    assert set(CRD_SCHEMAS) == {"ServiceMonitor", "PrometheusRule"}
    for kind, schema in CRD_SCHEMAS.items():
        jsonschema.Draft7Validator.check_schema(schema)
        # A misspelt field of what the chart renders is caught.
        doc = full_render.one(kind)
        misspelt = doc | {"spec": doc["spec"] | {"endpoint": []}}
        with pytest.raises(jsonschema.ValidationError, match="'endpoint' was unexpected"):
            jsonschema.validate(misspelt, schema)


def test_kube_version_floor_is_enforced(helm: Path) -> None:
    assert render(helm, "--kube-version", "1.27.0").kinds()
    assert "kubeVersion" in refused(helm, "--kube-version", "1.26.0")


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def test_names_and_labels_are_valid(any_render: Rendered) -> None:
    # The API schemas do not check these; the API server does, at install time.
    for doc in any_render.docs:
        meta = doc["metadata"]
        assert _DNS_LABEL.match(meta["name"]), meta["name"]
        assert meta.get("namespace") in (None, NAMESPACE)
        for key, value in (meta.get("labels") or {}).items():
            assert _LABEL_VALUE.match(str(value)), f"{doc['kind']} label {key}={value!r}"


def test_default_and_full_render_the_expected_objects(
    default_render: Rendered, full_render: Rendered
) -> None:
    # Pod: the `helm test` hook.
    always = {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget", "Pod"}
    optional = {
        "Ingress",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "Secret",
        "PersistentVolumeClaim",
    }
    # The mirror runs only when it has a topic to read: none by default (no provider enabled).
    mirror = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    assert default_render.kinds() == always
    assert full_render.kinds() == always | optional - {"PersistentVolumeClaim"}  # s3 store
    assert len(full_render.docs) == len(always | optional) - 1 + len(mirror)
    assert {d["kind"] for d in full_render.docs if component_of(d) == "mirror"} == mirror


# --- the pod ----------------------------------------------------------------------------------


def test_pod_runs_locked_down(any_render: Rendered) -> None:
    spec = any_render.pod["spec"]
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    assert pod_sc["runAsUser"] == 10001 and pod_sc["runAsGroup"] == 10001
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = any_render.container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # No Kubernetes API token in the pod, from the pod spec or the ServiceAccount.
    assert spec["automountServiceAccountToken"] is False
    (account,) = any_render.all("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    # Read-only root filesystem: /tmp is a writable emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in any_render.container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_resources_have_requests_and_limits(any_render: Rendered) -> None:
    resources = any_render.container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_probes_use_the_dedicated_endpoints(any_render: Rendered) -> None:
    c = any_render.container
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080}
    for probe, path in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ]:
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    # Startup covers schema registration; liveness only takes over after it.
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def shutdown_budget(config: dict[str, Any], pre_stop: float) -> float:
    """What the pod needs between deletion and SIGKILL (see the chart README, "Shutdown
    budget"): the preStop sleep; uvicorn's drain of in-flight callbacks (each up to
    read_timeout_seconds + deadline_seconds, cut at its graceful-shutdown timeout, which
    connector.cli sets to kafka.flush_timeout_seconds); the producer flush."""
    flush = config["kafka"].get("flush_timeout_seconds", 30.0)
    longest = max(
        [
            p.get("read_timeout_seconds", 30.0) + p.get("deadline_seconds", 8.0)
            for p in config["providers"].values()
        ]
        or [0.0]
    )
    return pre_stop + min(longest, flush) + flush


def test_shutdown_fits_drain_and_flush(any_render: Rendered, helm: Path) -> None:
    spec = any_render.pod["spec"]
    command = any_render.container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 5
    config = yaml.safe_load(any_render.config_text)
    assert spec["terminationGracePeriodSeconds"] >= shutdown_budget(config, pre_stop)


def test_uvicorn_drain_timeout_is_the_flush_timeout() -> None:
    # The budget above relies on this: uvicorn's graceful-shutdown timeout is the flush timeout.
    from connector.server import uvicorn_config

    config = config_mod.Config.model_validate({"kafka": {"flush_timeout_seconds": 12.5}})
    assert uvicorn_config(config, "127.0.0.1", 8080).timeout_graceful_shutdown == 12.5


def test_default_values_fit_an_enabled_provider(helm: Path) -> None:
    # The README's install command enables one provider with the connector's defaults.
    rendered = render(helm, *sets(*open_providers("bandwidth-v2")))
    config = yaml.safe_load(rendered.config_text)
    assert shutdown_budget(config, 5) == 5 + 30 + 30  # min(30 + 8, 30): uvicorn cuts the drain
    assert rendered.pod["spec"]["terminationGracePeriodSeconds"] >= 65


@pytest.mark.parametrize(
    ("settings", "needed"),
    [
        # The drain is capped by the flush timeout (uvicorn's graceful-shutdown timeout).
        ([*open_providers("sinch")], 5 + 30 + 30),
        ([*open_providers("sinch"), "providers.sinch.deadline_seconds=60"], 5 + 30 + 30),
        # Below the cap, a slow upload (read_timeout_seconds) counts as well as the deadline.
        (
            [
                *open_providers("sinch"),
                "kafka.flush_timeout_seconds=60",
                "providers.sinch.read_timeout_seconds=20",
            ],
            5 + 28 + 60,
        ),
        (
            [
                *open_providers("sinch"),
                *open_providers("openmarket"),
                "kafka.flush_timeout_seconds=60",
                "providers.sinch.read_timeout_seconds=10",
                "providers.openmarket.read_timeout_seconds=15",
                "providers.openmarket.deadline_seconds=10",
            ],
            5 + 25 + 60,
        ),
        # No provider: nothing in flight, only the flush.
        ([], 5 + 30),
    ],
)
def test_grace_period_below_the_budget_is_refused(
    helm: Path, settings: list[str], needed: float
) -> None:
    at = math.ceil(needed)
    assert render(helm, *sets(*settings, f"shutdown.terminationGracePeriodSeconds={at}"))
    err = refused(helm, *sets(*settings, f"shutdown.terminationGracePeriodSeconds={at - 1}"))
    assert "terminationGracePeriodSeconds" in err
    assert f"= {needed:g};" in err


def test_pods_spread_over_nodes_and_zones(default_render: Rendered, full_render: Rendered) -> None:
    selector = default_render.one("Deployment")["spec"]["selector"]["matchLabels"]
    spec = default_render.pod["spec"]
    soft = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert soft[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert soft[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == selector
    hard = full_render.pod["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard


@pytest.mark.parametrize(
    ("assignments", "expected"),
    [
        pytest.param([], {"maxUnavailable": 0, "maxSurge": 1}, id="keeps-capacity"),
        # Hard anti-affinity with a pod on every node: a surge pod could never be scheduled
        # (full-values' upgrade stalled on three kwok nodes in tests/cluster).
        pytest.param(
            ["podAntiAffinity=hard"], {"maxUnavailable": 1, "maxSurge": 0}, id="hard-one-by-one"
        ),
        pytest.param(
            ["podAntiAffinity=hard", "rollingUpdate.maxUnavailable=0", "rollingUpdate.maxSurge=1"],
            {"maxUnavailable": 0, "maxSurge": 1},
            id="hard-with-spare-nodes",
        ),
        pytest.param(["rollingUpdate.maxSurge=25%"], {"maxUnavailable": 0, "maxSurge": "25%"}),
    ],
)
def test_receiver_rollout(helm: Path, assignments: list[str], expected: dict[str, Any]) -> None:
    deployment = render(helm, *sets(*assignments)).one("Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == expected


def test_replicas_belong_to_the_hpa_when_enabled(
    default_render: Rendered, full_render: Rendered
) -> None:
    assert default_render.one("Deployment")["spec"]["replicas"] == 2
    assert "replicas" not in full_render.one("Deployment")["spec"]
    hpa = full_render.one("HorizontalPodAutoscaler")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == full_render.one("Deployment")["metadata"]["name"]
    )


def test_pdb_selects_the_pods(any_render: Rendered) -> None:
    pdb = any_render.one("PodDisruptionBudget")
    labels = any_render.pod["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])


def test_service_and_service_monitor_reach_the_pods(full_render: Rendered) -> None:
    service = full_render.one("Service")
    labels = full_render.pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    monitor = full_render.one("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == endpoint | {"port": port["name"], "path": "/metrics"}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_alerts_use_metrics_the_connector_exports(full_render: Rendered) -> None:
    metrics = pytest.importorskip("connector.metrics", reason="the connector has no metrics yet")
    from prometheus_client import REGISTRY, generate_latest

    assert metrics.CALLBACKS  # registered on import
    exported = set()
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            suffixes = ["_bucket", "_sum", "_count"] if kind == "histogram" else [""]
            exported |= {name + s for s in suffixes}
    rules = full_render.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    used = {m for r in rules for m in re.findall(r"\b(mms_[a-z_]+)\b", r["expr"])}
    assert used, "no connector metric in the alerts"
    assert used <= exported, f"not exported by the connector: {sorted(used - exported)}"
    service = full_render.one("Service")["metadata"]["name"]
    for r in rules:
        assert f'namespace="{NAMESPACE}", service="{service}"' in r["expr"], r["alert"]


def test_network_policy_limits_ingress_to_the_http_port(full_render: Rendered) -> None:
    policy = full_render.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    # The values' two namespaces, and the chart's own `helm test` pod (it checks /readyz).
    *given, test_pod = rule["from"]
    assert len(given) == 2
    test_pod_labels = {"app.kubernetes.io/instance": "mms", "app.kubernetes.io/component": "test"}
    assert test_pod == {"podSelector": {"matchLabels": test_pod_labels}}
    assert full_render.one("Pod", "test")["metadata"]["labels"].items() >= test_pod_labels.items()
    dns = policy["egress"][0]
    assert {p["port"] for p in dns["ports"]} == {53}


# --- config, secrets and rollouts --------------------------------------------------------------


def test_config_file_is_mounted_where_the_container_reads_it(any_render: Rendered) -> None:
    c = any_render.container
    assert c["args"] == ["--config", "/etc/mms-connector/config.yaml"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/mms-connector"
    assert mounts["config"]["readOnly"] is True
    volumes = {v["name"]: v for v in any_render.pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == any_render.one("ConfigMap")["metadata"]["name"]
    assert list(any_render.one("ConfigMap")["data"]) == ["config.yaml"]


def _checksums(rendered: Rendered) -> dict[str, str]:
    annotations = rendered.pod["metadata"]["annotations"]
    return {k: v for k, v in annotations.items() if k.startswith("checksum/")}


def test_config_change_rolls_the_pods(helm: Path, default_render: Rendered) -> None:
    base = _checksums(default_render)["checksum/config"]
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert _checksums(render(helm))["checksum/config"] == base  # stable
    # A value outside the config file does not roll the pods for nothing...
    assert _checksums(render(helm, *sets("replicaCount=5")))["checksum/config"] == base
    # ...a change of the config file does.
    for change in [open_providers("bandwidth-v2"), ["kafka.bootstrap_servers=other:9092"]]:
        assert _checksums(render(helm, *sets(*change)))["checksum/config"] != base, change


def test_secret_change_rolls_the_pods(helm: Path) -> None:
    one = _checksums(render(helm, *sets("secretEnv.MMS_TOKEN=one")))["checksum/secret"]
    two = _checksums(render(helm, *sets("secretEnv.MMS_TOKEN=two")))["checksum/secret"]
    assert one != two


def test_secrets_stay_out_of_the_config_map(full_render: Rendered, full_values: dict) -> None:
    secret_env: dict[str, str] = full_values["secretEnv"]
    assert secret_env
    config_map_text = yaml.safe_dump(full_render.one("ConfigMap"))
    for name, value in secret_env.items():
        assert value not in config_map_text, name
    secret = full_render.one("Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == secret_env
    # Nothing but the Secret carries a secret value in clear.
    for doc in full_render.docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            assert not any(v in text for v in secret_env.values()), doc["kind"]
    env_from = full_render.container["envFrom"]
    assert env_from == [{"secretRef": {"name": secret["metadata"]["name"]}}]


def test_existing_secret_is_used_as_is(helm: Path) -> None:
    rendered = render(helm, *sets("existingSecret=mms-credentials"))
    assert "Secret" not in rendered.kinds()
    assert rendered.container["envFrom"] == [{"secretRef": {"name": "mms-credentials"}}]
    assert "checksum/secret" not in _checksums(rendered)
    assert "both" in refused(helm, *sets("existingSecret=a", "secretEnv.B=c"))


def _secret_refs(config: dict[str, Any]) -> dict[str, Any]:
    """Every place of the config file that holds a credential: key -> what is there."""
    refs = {f"kafka.secrets.{k}": v for k, v in config["kafka"].get("secrets", {}).items()}
    if "password" in config["schema_registry"]:
        refs["schema_registry.password"] = config["schema_registry"]["password"]
    for key in ("access_key_id", "secret_access_key"):
        if key in config["media"].get("s3", {}):
            refs[f"media.s3.{key}"] = config["media"]["s3"][key]
    for name, provider in config["providers"].items():
        for key in ("password", "authorization"):
            if key in provider.get("media_fetch", {}):
                refs[f"providers.{name}.media_fetch.{key}"] = provider["media_fetch"][key]
        auth = provider.get("auth", {})
        if "basic" in auth:
            refs[f"providers.{name}.auth.basic.password"] = auth["basic"]["password"]
        if "token" in auth:
            refs[f"providers.{name}.auth.token.value"] = auth["token"]["value"]
        for i, key in enumerate(auth.get("signature", {}).get("keys", [])):
            refs[f"providers.{name}.auth.signature.keys.{i}"] = key
    return refs


def test_config_map_holds_only_references_to_secrets(full_render: Rendered) -> None:
    refs = _secret_refs(yaml.safe_load(full_render.config_text))
    assert set(refs) == {
        "kafka.secrets.sasl.password",
        "schema_registry.password",
        "media.s3.access_key_id",
        "media.s3.secret_access_key",
        "providers.bandwidth-v2.media_fetch.password",
        "providers.bandwidth-v2.auth.basic.password",
        "providers.openmarket.auth.token.value",
        "providers.sinch.auth.token.value",
    }
    for key, ref in refs.items():
        assert isinstance(ref, dict) and len(ref) == 1 and ref.keys() <= {"env", "file"}, key


def test_env_references_are_set_in_the_pod(full_render: Rendered) -> None:
    refs = _secret_refs(yaml.safe_load(full_render.config_text))
    secret = full_render.one("Secret")
    (env_from,) = full_render.container["envFrom"]
    assert env_from["secretRef"]["name"] == secret["metadata"]["name"]
    pod_env = set(secret["data"]) | {e["name"] for e in full_render.container.get("env", [])}
    wanted = {ref["env"] for ref in refs.values() if "env" in ref}
    assert wanted and wanted <= pod_env


def test_file_references_are_mounted_secrets(full_render: Rendered, helm: Path) -> None:
    refs = _secret_refs(yaml.safe_load(full_render.config_text))
    files = {key: ref["file"] for key, ref in refs.items() if "file" in ref}
    assert files == {"schema_registry.password": "/etc/mms-connector-secrets/registry/password"}
    mounts = {m["mountPath"]: m for m in full_render.container["volumeMounts"]}
    volumes = {v["name"]: v for v in full_render.pod["spec"]["volumes"]}
    for path in files.values():
        directory, _, name = path.rpartition("/")
        mount = mounts[directory]
        assert mount["readOnly"] is True
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == "mms-registry-credentials"
        assert name in {item["path"] for item in secret["items"]}
    # Every key of a Secret without items (a file per key).
    rendered = render(
        helm,
        *sets("secretFiles[0].secretName=kafka-client", "secretFiles[0].mountPath=/run/kafka/"),
    )
    volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["mountPath"] == "/run/kafka/"]
    assert volumes[mount["name"]]["secret"] == {"secretName": "kafka-client"}


def test_media_fetch_authorization_is_a_reference_that_reaches_the_pod(helm: Path) -> None:
    # By environment variable, from the chart-created Secret.
    rendered = render(
        helm,
        *sets(
            *open_providers("infobip"),
            "providers.infobip.media_fetch.authorization.env=MMS_INFOBIP_MEDIA_AUTH",
            "secretEnv.MMS_INFOBIP_MEDIA_AUTH=App 0123abcd",
        ),
    )
    config = yaml.safe_load(rendered.config_text)
    assert _secret_refs(config) == {
        "providers.infobip.media_fetch.authorization": {"env": "MMS_INFOBIP_MEDIA_AUTH"}
    }
    assert "App 0123abcd" not in rendered.config_text
    assert "MMS_INFOBIP_MEDIA_AUTH" in rendered.one("Secret")["data"]
    for container in (rendered.container, rendered.mirror_container):
        (env_from,) = container["envFrom"]
        assert env_from["secretRef"]["name"] == rendered.one("Secret")["metadata"]["name"]
    # By file, from a mounted Secret.
    path = "/etc/mms-connector-secrets/infobip/authorization"
    rendered = render(
        helm,
        *sets(
            *open_providers("infobip"),
            f"providers.infobip.media_fetch.authorization.file={path}",
            "secretFiles[0].secretName=infobip-media",
            "secretFiles[0].mountPath=/etc/mms-connector-secrets/infobip",
        ),
    )
    config = yaml.safe_load(rendered.config_text)
    assert config["providers"]["infobip"]["media_fetch"] == {"authorization": {"file": path}}
    for container in (rendered.container, rendered.mirror_container):
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/etc/mms-connector-secrets/infobip"]["readOnly"] is True


REFERENCE_PROBLEMS = [
    pytest.param(
        sets(
            "providers.sinch.enabled=true",
            "providers.sinch.auth.token.header=X-Token",
            "providers.sinch.auth.token.value.env=MMS_SINCH_TOKEN",
            "secretEnv.MMS_SINCH_TOKN=x",
        ),
        "providers.sinch.auth.token.value: environment variable MMS_SINCH_TOKEN is set by neither",
        id="env-not-in-secret-env",
    ),
    pytest.param(
        sets(
            "providers.sinch.enabled=true",
            "providers.sinch.auth.signature.keys[0].env=MMS_SINCH_KEY",
            "providers.sinch.auth.signature.keys[1].env=MMS_SINCH_NEXT_KEY",
            "secretEnv.MMS_SINCH_KEY=x",
        ),
        "providers.sinch.auth.signature.keys.1: environment variable MMS_SINCH_NEXT_KEY is set by",
        id="signature-key-env-nowhere",
    ),
    pytest.param(
        sets(
            "providers.sinch.enabled=true",
            "providers.sinch.auth.signature.keys[0].file=/etc/mms-connector-secrets/sinch/key",
            "secretFiles[0].secretName=sinch",
            "secretFiles[0].mountPath=/etc/mms-connector-secrets/sinc",
        ),
        "providers.sinch.auth.signature.keys.0: file /etc/mms-connector-secrets/sinch/key is under",
        id="signature-key-file-not-mounted",
    ),
    pytest.param(
        sets(r"kafka.secrets.sasl\.password.env=MMS_KAFKA_PASSWORD"),
        "kafka.secrets.sasl.password: environment variable MMS_KAFKA_PASSWORD",
        id="env-nowhere",
    ),
    pytest.param(
        sets("media.s3.access_key_id.env=S3_KEY", "media.s3.secret_access_key.env=S3_SECRET"),
        "media.s3.access_key_id: environment variable S3_KEY is set by neither",
        id="s3-keys-nowhere",
    ),
    pytest.param(
        sets(
            *open_providers("bandwidth-v2"),
            "providers.bandwidth-v2.media_fetch.username=api",
            "providers.bandwidth-v2.media_fetch.password.env=BW_API",
        ),
        "providers.bandwidth-v2.media_fetch.password: environment variable BW_API",
        id="media-fetch-password-nowhere",
    ),
    pytest.param(
        sets(
            *open_providers("infobip"),
            "providers.infobip.media_fetch.authorization.env=INFOBIP_MEDIA",
        ),
        "providers.infobip.media_fetch.authorization: environment variable INFOBIP_MEDIA",
        id="media-fetch-authorization-nowhere",
    ),
    pytest.param(
        sets(
            *open_providers("infobip"),
            "providers.infobip.media_fetch.authorization.file=/etc/mms-connector-secrets/ib/auth",
            "secretFiles[0].secretName=infobip",
            "secretFiles[0].mountPath=/etc/mms-connector-secrets/i",
        ),
        "providers.infobip.media_fetch.authorization: file /etc/mms-connector-secrets/ib/auth is",
        id="media-fetch-authorization-file-not-mounted",
    ),
    pytest.param(
        sets(
            "schema_registry.username=mms",
            "schema_registry.password.file=/etc/mms-connector-secrets/registry/password",
            "secretFiles[0].secretName=registry",
            "secretFiles[0].mountPath=/etc/mms-connector-secrets/reg",
        ),
        "schema_registry.password: file /etc/mms-connector-secrets/registry/password is under no",
        id="file-not-mounted",
    ),
    pytest.param(
        sets(
            "providers.openmarket.enabled=true",
            "providers.openmarket.path=/",
            "providers.openmarket.auth.token.in_path=true",
            "providers.openmarket.auth.token.value.env=T",
            "secretEnv.T=x",
        ),
        "path / would expose /healthz",
        id="token-in-path-at-root",
    ),
]


@pytest.mark.parametrize(("args", "message"), REFERENCE_PROBLEMS)
def test_references_the_pod_cannot_satisfy_are_refused(
    helm: Path, args: list[str], message: str
) -> None:
    assert message in refused(helm, *args)


def test_references_satisfied_otherwise_are_accepted(helm: Path) -> None:
    token = (
        *open_providers("sinch"),
        "providers.sinch.auth.token.header=X-Token",
        "providers.sinch.auth.token.value.env=MMS_SINCH_TOKEN",
    )
    # A Secret the chart cannot see into: its keys are the operator's business.
    render(helm, *sets(*token, "existingSecret=mms-credentials"))
    # A plain variable, e.g. from valueFrom.secretKeyRef.
    render(
        helm,
        *sets(
            *token,
            "extraEnv[0].name=MMS_SINCH_TOKEN",
            "extraEnv[0].valueFrom.secretKeyRef.name=sinch",
            "extraEnv[0].valueFrom.secretKeyRef.key=token",
        ),
    )
    # A file in an extra volume; disabled providers' references are not checked (left out).
    rendered = render(
        helm,
        *sets(
            r"kafka.secrets.ssl\.key\.password.file=/etc/kafka-tls/key-password",
            "extraVolumes[0].name=tls",
            "extraVolumes[0].secret.secretName=kafka-tls",
            "extraVolumeMounts[0].name=tls",
            "extraVolumeMounts[0].mountPath=/etc/kafka-tls",
            "providers.openmarket.auth.token.in_path=true",
            "providers.openmarket.auth.token.value.env=NOWHERE",
        ),
    )
    assert "openmarket" not in yaml.safe_load(rendered.config_text)["providers"]


def test_no_secret_means_no_env_from(default_render: Rendered) -> None:
    assert "envFrom" not in default_render.container
    assert "checksum/secret" not in _checksums(default_render)


# --- exposure ---------------------------------------------------------------------------------


def test_ingress_exposes_only_the_enabled_callbacks(full_render: Rendered) -> None:
    ingress = full_render.one("Ingress")
    hosts = ["mms-callbacks.example.com", "mms-callbacks-dr.example.com"]
    # bandwidth-v1 is disabled; openmarket's token is the last path segment: a prefix.
    assert ingress_paths(ingress) == [
        (h, path, kind)
        for h in hosts
        for path, kind in [
            ("/callbacks/bandwidth/v2", "Exact"),
            ("/callbacks/openmarket/", "Prefix"),
            ("/callbacks/sinch", "Exact"),
        ]
    ]
    service = full_render.one("Service")
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            assert p["backend"]["service"] == {
                "name": service["metadata"]["name"],
                "port": {"number": service["spec"]["ports"][0]["port"]},
            }
    assert ingress["spec"]["tls"] == [
        {"secretName": "mms-callbacks-tls", "hosts": ["mms-callbacks.example.com"]}
    ]


def test_ingress_with_every_provider(helm: Path) -> None:
    # One of them on a path of its own, the others on the default /callbacks/<name>.
    moved, *others = PROVIDER_NAMES
    rendered = render(
        helm,
        *sets("ingress.enabled=true", f"providers.{moved}.path=/hooks/{moved}"),
        *sets(*open_providers(*PROVIDER_NAMES)),
    )
    paths = ingress_paths(rendered.one("Ingress"))
    assert {p for _, p, _ in paths} == {f"/hooks/{moved}"} | {f"/callbacks/{n}" for n in others}
    assert {t for _, _, t in paths} == {"Exact"}
    assert not {p for _, p, _ in paths} & INTERNAL_PATHS
    assert {h for h, _, _ in paths} == {None}  # no hosts given: one rule for any host


@pytest.mark.parametrize("path", [None, "/hooks/om", "/hooks/om/"])
def test_ingress_routes_the_token_segment_as_a_prefix(helm: Path, path: str | None) -> None:
    rendered = render(
        helm,
        *sets(
            "ingress.enabled=true",
            "providers.openmarket.enabled=true",
            "providers.openmarket.auth.token.in_path=true",
            "providers.openmarket.auth.token.value.env=MMS_OPENMARKET_TOKEN",
            "secretEnv.MMS_OPENMARKET_TOKEN=x",
            *open_providers("sinch"),
        ),
        *(sets(f"providers.openmarket.path={path}") if path else []),
    )
    base = (path or "/callbacks/openmarket").rstrip("/")
    assert sorted(ingress_paths(rendered.one("Ingress"))) == sorted(
        [(None, "/callbacks/sinch", "Exact"), (None, base + "/", "Prefix")]
    )


def test_ingress_without_providers_is_refused(helm: Path) -> None:
    assert "no provider is enabled" in refused(helm, *sets("ingress.enabled=true"))


# --- media store ------------------------------------------------------------------------------


FILESYSTEM_CLAIM = (
    "media.store=filesystem",
    "media.volume.type=persistentVolumeClaim",
    "media.volume.persistentVolumeClaim.size=50Gi",
)


def test_s3_is_the_default_store_and_needs_no_volume(
    default_render: Rendered, full_render: Rendered
) -> None:
    for rendered in (default_render, full_render):
        media = yaml.safe_load(rendered.config_text)["media"]
        assert media["store"] == "s3" and "root" not in media
        volumes = {v["name"] for v in rendered.pod["spec"]["volumes"]}
        assert "media" not in volumes
        assert "media" not in {m["name"] for m in rendered.container["volumeMounts"]}
    assert yaml.safe_load(default_render.config_text)["media"]["s3"] == {
        "bucket": "mms-media",
        "region": "us-east-1",
    }


def test_filesystem_store_volume(filesystem_render: Rendered, helm: Path) -> None:
    mounts = {m["name"]: m["mountPath"] for m in filesystem_render.container["volumeMounts"]}
    assert mounts["media"] == "/var/lib/mms-connector/media"
    assert yaml.safe_load(filesystem_render.config_text)["media"] == {
        "store": "filesystem",
        "root": mounts["media"],
    }
    volumes = {v["name"]: v for v in filesystem_render.pod["spec"]["volumes"]}
    assert volumes["media"] == {"name": "media", "emptyDir": {"sizeLimit": "1Gi"}}
    # A claim, shared by every receiver and the mirror (which stores what it fetches there).
    rendered = render(helm, *sets(*FILESYSTEM_CLAIM, *open_providers("sinch")))
    claim = rendered.one("PersistentVolumeClaim")
    for pod in (rendered.pod, rendered.mirror_pod):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["media"]["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The s3 store ignores the volume settings: no claim is made.
    assert "PersistentVolumeClaim" not in render(helm, *sets(*FILESYSTEM_CLAIM[1:])).kinds()


def test_existing_claim_is_used_as_is(helm: Path) -> None:
    rendered = render(
        helm,
        *sets(
            "media.store=filesystem",
            "media.volume.type=persistentVolumeClaim",
            "media.volume.persistentVolumeClaim.existingClaim=shared-media",
        ),
    )
    assert "PersistentVolumeClaim" not in rendered.kinds()
    volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
    assert volumes["media"]["persistentVolumeClaim"] == {"claimName": "shared-media"}


# --- values the chart refuses -----------------------------------------------------------------

BAD_VALUES = [
    pytest.param(["--set-string", "replicaCount=x"], "/replicaCount", id="replicas-not-a-number"),
    pytest.param(["--set", "replicaCount=0"], "/replicaCount", id="no-replicas"),
    pytest.param(
        sets("providers.sinch.topic=bad topic!"), "/providers/sinch/topic", id="bad-topic"
    ),
    pytest.param(sets("providers.sinch.path=callbacks"), "/providers/sinch/path", id="bad-path"),
    # A provider's own options are scalars (the connector checks their names and values).
    pytest.param(
        sets("providers.sinch.options.max_parts=3"),
        "/providers/sinch/options",
        id="option-not-a-scalar",
    ),
    pytest.param(
        sets("providers.sinch.max_parts={1,2}"), "/providers/sinch/max_parts", id="option-a-list"
    ),
    pytest.param(
        sets("providers.sinch.deadline_seconds=0"), "deadline_seconds", id="deadline-zero"
    ),
    pytest.param(sets("providers.sinch.default_country=USA"), "default_country", id="bad-country"),
    pytest.param(
        ["--set-string", "providers.sinch.enabled=yes"], "/providers/sinch/enabled", id="not-bool"
    ),
    pytest.param(
        ["--set", r"kafka.producer.sasl\.password=hunter2"],
        "/kafka/producer/sasl.password",
        id="secret-in-producer-settings",
    ),
    pytest.param(
        ["--set", r"kafka.common.sasl\.password=hunter2"],
        "/kafka/common/sasl.password",
        id="secret-in-common-settings",
    ),
    pytest.param(
        ["--set", r"kafka.secrets.sasl\.password=hunter2"],
        "/kafka/secrets/sasl.password",
        id="literal-kafka-secret",
    ),
    pytest.param(
        sets(r"kafka.secrets.sasl\.password.value=hunter2"),
        "/kafka/secrets/sasl.password",
        id="kafka-secret-not-a-reference",
    ),
    pytest.param(
        sets("schema_registry.username=mms", "schema_registry.password=hunter2"),
        "/schema_registry/password",
        id="literal-registry-password",
    ),
    pytest.param(
        sets("schema_registry.password.env=MMS_REGISTRY_PASSWORD"),
        "/schema_registry/username",
        id="registry-password-without-username",
    ),
    pytest.param(
        sets("schema_registry.timeout_seconds=0"),
        "/schema_registry/timeout_seconds",
        id="registry-timeout-zero",
    ),
    pytest.param(
        sets("providers.sinch.auth.basic.username=u", "providers.sinch.auth.basic.password=pw"),
        "/providers/sinch/auth/basic/password",
        id="literal-basic-password",
    ),
    pytest.param(
        sets("providers.sinch.auth.basic.password.env=P"),
        "missing property 'username'",
        id="basic-without-username",
    ),
    pytest.param(
        sets("providers.sinch.auth.token.header=X-Token", "providers.sinch.auth.token.value=tok"),
        "/providers/sinch/auth/token/value",
        id="literal-token",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.token.header=X-Token",
            "providers.sinch.auth.token.value.env=T",
            "providers.sinch.auth.token.value.file=/run/t",
        ),
        "/providers/sinch/auth/token/value",
        id="env-and-file",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.token.header=X-Token",
            "providers.sinch.auth.token.in_path=true",
            "providers.sinch.auth.token.value.env=T",
        ),
        "/providers/sinch/auth/token",
        id="token-header-and-in-path",
    ),
    pytest.param(
        sets("providers.sinch.auth.token.value.env=T"),
        "/providers/sinch/auth/token",
        id="token-neither-header-nor-in-path",
    ),
    pytest.param(
        sets("providers.sinch.auth.token.header=X Token", "providers.sinch.auth.token.value.env=T"),
        "/providers/sinch/auth/token/header",
        id="bad-header-name",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.token.header=X-Token", "providers.sinch.auth.token.value.file=t"
        ),
        "/providers/sinch/auth/token/value",
        id="relative-secret-file",
    ),
    pytest.param(
        sets("providers.sinch.auth.allow_cidrs={10.0.0.0/33}"),
        "/providers/sinch/auth/allow_cidrs/0",
        id="bad-cidr",
    ),
    pytest.param(
        sets("providers.sinch.auth.trusted_proxies={ingress-nginx}"),
        "/providers/sinch/auth/trusted_proxies/0",
        id="proxy-not-a-cidr",
    ),
    pytest.param(
        sets("providers.sinch.auth.oauth=x"), "'oauth' not allowed", id="unknown-auth-key"
    ),
    pytest.param(
        ["--set-json", "providers.sinch.auth.signature.keys=[]"],
        "/providers/sinch/auth/signature/keys': minItems",
        id="signature-no-keys",
    ),
    pytest.param(
        sets(*(f"providers.sinch.auth.signature.keys[{i}].env=K{i}" for i in range(5))),
        "/providers/sinch/auth/signature/keys': maxItems",
        id="signature-five-keys",
    ),
    pytest.param(
        sets("providers.sinch.auth.signature.keys[0]=hunter2"),
        "/providers/sinch/auth/signature/keys/0",
        id="literal-signature-key",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.keys[0].file=/run/k",
        ),
        "/providers/sinch/auth/signature/keys/0",
        id="signature-key-env-and-file",
    ),
    pytest.param(
        sets("providers.sinch.auth.signature.url=https://mms.example.com/callbacks/sinch"),
        "missing property 'keys'",
        id="signature-without-keys",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.url=https://mms.example.com/callbacks/sinch?a=1",
        ),
        "/providers/sinch/auth/signature/url",
        id="signature-url-with-query",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.url=https://mms.example.com/callbacks/sinch#x",
        ),
        "/providers/sinch/auth/signature/url",
        id="signature-url-with-fragment",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.url=/callbacks/sinch",
        ),
        "/providers/sinch/auth/signature/url",
        id="signature-url-not-absolute",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.max_age_seconds=0",
        ),
        "/providers/sinch/auth/signature/max_age_seconds",
        id="signature-max-age-zero",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.max_age_seconds=86401",
        ),
        "/providers/sinch/auth/signature/max_age_seconds",
        id="signature-max-age-over-a-day",
    ),
    pytest.param(
        sets(
            "providers.sinch.auth.signature.keys[0].env=K",
            "providers.sinch.auth.signature.algorithm=sha1",
        ),
        "'algorithm' not allowed",
        id="unknown-signature-key",
    ),
    pytest.param(
        sets("secretFiles[0].secretName=s", "secretFiles[0].mountPath=/etc/mms-connector/s"),
        "/secretFiles/0/mountPath",
        id="secret-files-under-the-config",
    ),
    pytest.param(
        sets("secretFiles[0].secretName=s", "secretFiles[0].mountPath=run/s"),
        "/secretFiles/0/mountPath",
        id="secret-files-relative",
    ),
    pytest.param(
        sets(
            "secretFiles[0].secretName=s",
            "secretFiles[0].mountPath=/run/s",
            "secretFiles[0].items[0].key=k",
            "secretFiles[0].items[0].path=../k",
        ),
        "/secretFiles/0/items/0/path",
        id="secret-files-item-escapes",
    ),
    pytest.param(
        sets("kafka.bootstrap_servers=kafka"), "/kafka/bootstrap_servers", id="no-kafka-port"
    ),
    pytest.param(
        sets("schema_registry.url=https://user:pw@registry:8081"),
        "/schema_registry/url",
        id="credentials-in-registry-url",
    ),
    pytest.param(
        sets("schema_registry.compatibility=NONE"), "/schema_registry/compatibility", id="compat"
    ),
    pytest.param(sets("secretEnv.bad-name=x"), "'bad-name' not allowed", id="bad-env-name"),
    pytest.param(sets("media.volume.type=hostPath"), "/media/volume/type", id="media-type"),
    pytest.param(sets("containerPort=80"), "/containerPort", id="privileged-port"),
    pytest.param(sets("podAntiAffinity=maybe"), "/podAntiAffinity", id="anti-affinity"),
    pytest.param(sets("image.digest=latest"), "/image/digest", id="bad-digest"),
    pytest.param(sets("resources.limits=null"), "limits", id="no-limits"),
    pytest.param(sets("typo=1"), "'typo' not allowed", id="unknown-top-level-key"),
    pytest.param(
        sets(
            "media.store=filesystem",
            "media.volume.type=persistentVolumeClaim",
            "media.volume.persistentVolumeClaim.accessModes={ReadWriteOnce}",
        ),
        "ReadWriteMany",
        id="rwo-claim-shared-by-replicas",
    ),
    pytest.param(
        sets(
            "replicaCount=1",
            *open_providers("sinch"),
            "media.store=filesystem",
            "media.volume.type=persistentVolumeClaim",
            "media.volume.persistentVolumeClaim.accessModes={ReadWriteOnce}",
        ),
        "ReadWriteMany",
        id="rwo-claim-shared-with-the-mirror",
    ),
    pytest.param(sets("media.store=gcs"), "/media/store", id="unknown-store"),
    pytest.param(sets("media.s3.access_key_id.env=K"), "/media/s3", id="s3-key-without-secret"),
    pytest.param(
        sets("media.s3.access_key_id=AKIA", "media.s3.secret_access_key=shh"),
        "/media/s3/access_key_id",
        id="literal-s3-keys",
    ),
    pytest.param(sets("media.s3.kms_key_id=k"), "/media/s3", id="kms-key-without-kms"),
    pytest.param(
        sets("media.s3.public_url_base=http://cdn.example"),
        "/media/s3/public_url_base",
        id="public-url-not-https",
    ),
    pytest.param(
        sets("media.s3.public_url_base=https://cdn.example", "media.s3.presign_seconds=60"),
        "/media/s3",
        id="public-url-and-presign",
    ),
    pytest.param(
        sets("media.s3.presign_seconds=604801"), "/media/s3/presign_seconds", id="presign-too-long"
    ),
    pytest.param(sets("media.s3.bucket=Media_Bucket"), "/media/s3/bucket", id="bad-bucket"),
    pytest.param(
        sets(
            "providers.bandwidth-v2.media_fetch.username=u",
            "providers.bandwidth-v2.media_fetch.password=pw",
        ),
        "/providers/bandwidth-v2/media_fetch/password",
        id="literal-media-fetch-password",
    ),
    pytest.param(
        sets("providers.bandwidth-v2.media_fetch.password.env=P"),
        "/providers/bandwidth-v2/media_fetch",
        id="media-fetch-password-without-username",
    ),
    pytest.param(
        sets("providers.infobip.media_fetch.authorization=App 0123abcd"),
        "/providers/infobip/media_fetch/authorization",
        id="literal-media-fetch-authorization",
    ),
    pytest.param(
        sets(
            "providers.infobip.media_fetch.username=u",
            "providers.infobip.media_fetch.password.env=P",
            "providers.infobip.media_fetch.authorization.env=A",
        ),
        "/providers/infobip/media_fetch/username",
        id="media-fetch-authorization-beside-username",
    ),
    pytest.param(
        sets("providers.sinch.media_fetch.allowed_hosts={http://x}"),
        "/providers/sinch/media_fetch/allowed_hosts/0",
        id="allowed-host-not-a-host",
    ),
    pytest.param(sets("mirror.topic=bad topic"), "/mirror/topic", id="bad-mirror-topic"),
    pytest.param(sets("mirror.concurrency=0"), "/mirror/concurrency", id="no-concurrency"),
    pytest.param(sets("mirror.port=80"), "/mirror/port", id="mirror-privileged-port"),
    pytest.param(sets("mirror.replicas=2"), "'replicas' not allowed", id="unknown-mirror-key"),
]


@pytest.mark.parametrize(("args", "message"), BAD_VALUES)
def test_bad_values_are_refused(helm: Path, args: list[str], message: str) -> None:
    assert message in refused(helm, *args)


def test_lint_refuses_bad_values_too(helm: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), *sets("providers.Bad_Name.enabled=true"))
    assert proc.returncode != 0
    assert "'Bad_Name' not allowed" in proc.stdout + proc.stderr


# --- NOTES.txt --------------------------------------------------------------------------------


def test_notes_print_the_callback_urls(
    helm: Path, tmp_path: Path, full_values: dict[str, Any]
) -> None:
    notes = render_notes(helm, tmp_path, "-f", str(FULL_VALUES))
    assert "https://mms-callbacks.example.com/callbacks/bandwidth/v2" in notes
    assert "http://mms-callbacks-dr.example.com/callbacks/bandwidth/v2" in notes
    assert "https://mms-callbacks.example.com/callbacks/sinch\n" in notes
    # The token is part of openmarket's URL: a placeholder, never the secret.
    assert "https://mms-callbacks.example.com/callbacks/openmarket/<token>\n" in notes
    assert not any(value in notes for value in full_values["secretEnv"].values())
    assert "bandwidth-v1" not in notes.split("Health")[0]  # disabled: no URL
    assert "mms-registry-credentials at /etc/mms-connector-secrets/registry" in notes
    notes = render_notes(helm, tmp_path / "2", *sets(*open_providers("sinch")))
    assert f"http://mms-mms-connector.{NAMESPACE}.svc:80/callbacks/sinch" in notes
    notes = render_notes(helm, tmp_path / "3")
    assert "no provider is enabled" in notes


@pytest.mark.parametrize(
    ("auth", "rendered"),
    [
        ([], None),
        (["providers.sinch.auth.trusted_proxies[0]=10.0.0.0/8"], None),
        (["providers.sinch.auth.unauthenticated=true"], {"unauthenticated": True}),
        (
            ["providers.sinch.auth.allow_cidrs[0]=203.0.113.0/24"],
            {"allow_cidrs": ["203.0.113.0/24"]},
        ),
        (
            ["providers.sinch.auth.signature.keys[0].env=MMS_SINCH_KEY", "existingSecret=creds"],
            {"signature": {"keys": [{"env": "MMS_SINCH_KEY"}]}},
        ),
    ],
)
def test_a_provider_open_to_anyone_must_say_so(
    helm: Path, auth: list[str], rendered: dict[str, object] | None
) -> None:
    args = sets("providers.sinch.enabled=true", *auth)
    if rendered is None:
        assert "set providers.sinch.auth.unauthenticated: true" in refused(helm, *args)
    else:
        config = yaml.safe_load(render(helm, *args).config_text)
        assert config["providers"]["sinch"]["auth"] == rendered


# --- request signatures ----------------------------------------------------------------------

# A provider's own request signature: keys by reference, like basic.password and token.value.
# The chart is generic here (any provider name); test_config_file.py loads the rendered config
# for a provider that signs.
SIGNER = "signer"
SIGNATURE_VALUES: dict[str, Any] = {
    "providers": {
        SIGNER: {
            "enabled": True,
            "auth": {
                "signature": {
                    "keys": [
                        {"env": "MMS_SIGNER_KEY"},
                        {"file": "/etc/mms-connector-secrets/signer/next-key"},
                    ],
                    "url": f"https://mms.example.com/callbacks/{SIGNER}",
                    "max_age_seconds": 600,
                }
            },
        }
    },
    "secretEnv": {"MMS_SIGNER_KEY": "signer-key-3c2b1a"},
    "secretFiles": [
        {"secretName": "mms-signer-keys", "mountPath": "/etc/mms-connector-secrets/signer"}
    ],
}


def _render_values(helm: Path, tmp_path: Path, values: dict[str, Any], *args: str) -> Rendered:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render(helm, "-f", str(path), *args)


def test_a_signature_renders_with_its_keys_as_references(helm: Path, tmp_path: Path) -> None:
    # A signature alone is authentication enough (no "enabled without auth" refusal).
    rendered = _render_values(helm, tmp_path, SIGNATURE_VALUES)
    config = yaml.safe_load(rendered.config_text)
    assert config["providers"][SIGNER] == SIGNATURE_VALUES["providers"][SIGNER]
    refs = _secret_refs(config)
    assert refs == {
        f"providers.{SIGNER}.auth.signature.keys.0": {"env": "MMS_SIGNER_KEY"},
        f"providers.{SIGNER}.auth.signature.keys.1": {
            "file": "/etc/mms-connector-secrets/signer/next-key"
        },
    }
    assert "signer-key-3c2b1a" not in yaml.safe_dump(rendered.one("ConfigMap"))
    # url and max_age_seconds are optional: left out when not given (or null), the connector's
    # defaults apply.
    values = yaml.safe_load(yaml.safe_dump(SIGNATURE_VALUES))
    values["providers"][SIGNER]["auth"]["signature"] |= {"url": None}
    del values["providers"][SIGNER]["auth"]["signature"]["max_age_seconds"]
    config = yaml.safe_load(_render_values(helm, tmp_path, values).config_text)
    assert config["providers"][SIGNER]["auth"] == {
        "signature": {"keys": SIGNATURE_VALUES["providers"][SIGNER]["auth"]["signature"]["keys"]}
    }


def test_signature_keys_reach_the_pod_like_the_other_credentials(
    helm: Path, tmp_path: Path
) -> None:
    rendered = _render_values(helm, tmp_path, SIGNATURE_VALUES)
    # {env}: a key of the chart-created Secret, which the container takes whole.
    secret = rendered.one("Secret")
    assert base64.b64decode(secret["data"]["MMS_SIGNER_KEY"]).decode() == "signer-key-3c2b1a"
    assert rendered.container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    # {file}: under a secretFiles mount, read-only.
    mounts = {m["mountPath"]: m for m in rendered.container["volumeMounts"]}
    mount = mounts["/etc/mms-connector-secrets/signer"]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
    assert volumes[mount["name"]]["secret"] == {"secretName": "mms-signer-keys"}
    # The same keys as basic.password's would be: an existingSecret satisfies any variable.
    values = {k: v for k, v in SIGNATURE_VALUES.items() if k != "secretEnv"}
    rendered = _render_values(helm, tmp_path, values, *sets("existingSecret=mms-credentials"))
    assert rendered.container["envFrom"] == [{"secretRef": {"name": "mms-credentials"}}]
    # Disabled: left out, its references unchecked.
    values = yaml.safe_load(yaml.safe_dump(values))
    values["providers"][SIGNER]["enabled"] = False
    config = yaml.safe_load(_render_values(helm, tmp_path, values).config_text)
    assert config["providers"] == {}


# --- the mirror -------------------------------------------------------------------------------


@pytest.mark.parametrize("values", ["one provider", "full"])
def test_mirror_runs_the_mirror_command_on_its_own_port(
    helm: Path, full_render: Rendered, values: str
) -> None:
    rendered = full_render if values == "full" else render(helm, *sets(*open_providers("sinch")))
    c = rendered.mirror_container
    port = c["ports"][0]["containerPort"]
    assert c["command"] == ["mms-connector", "mirror"]
    assert c["args"] == ["--config", "/etc/mms-connector/config.yaml", "--port", str(port)]
    assert [p["name"] for p in c["ports"]] == ["http"]
    for probe, path in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ]:
        assert c[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    # The same config file, credentials, volumes and lock-down as the receiver.
    receiver = rendered.container
    assert c.get("envFrom") == receiver.get("envFrom") and c.get("env") == receiver.get("env")
    assert c["volumeMounts"] == receiver["volumeMounts"]
    assert rendered.mirror_pod["spec"]["volumes"] == rendered.pod["spec"]["volumes"]
    assert c["securityContext"] == receiver["securityContext"]
    spec = rendered.mirror_pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == rendered.pod["spec"]["serviceAccountName"]
    checksums = rendered.mirror_pod["metadata"]["annotations"]["checksum/config"]
    assert checksums == rendered.pod["metadata"]["annotations"]["checksum/config"]


def pod_selector(doc: dict[str, Any]) -> dict[str, str]:
    selector = doc["spec"]["selector"]
    return selector if doc["kind"] == "Service" else selector["matchLabels"]


def test_mirror_pods_are_nobody_elses(full_render: Rendered) -> None:
    """The receiver's Service, PDB and HPA never count the mirror's pods, and the other way
    round; the ServiceMonitor scrapes both Services."""
    receiver = full_render.pod["metadata"]["labels"]
    mirror = full_render.mirror_pod["metadata"]["labels"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return selector.items() <= labels.items()

    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        mine, theirs = (pod_selector(full_render.one(kind, c)) for c in ("connector", "mirror"))
        assert selects(mine, receiver) and not selects(mine, mirror), kind
        assert selects(theirs, mirror) and not selects(theirs, receiver), kind
    hpa = full_render.one("HorizontalPodAutoscaler", "mirror")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"]
        == full_render.one("Deployment", "mirror")["metadata"]["name"]
    )
    assert "replicas" not in full_render.one("Deployment", "mirror")["spec"]  # the HPA's
    monitor = full_render.one("ServiceMonitor")["spec"]
    (endpoint,) = monitor["endpoints"]
    for service in full_render.all("Service"):
        assert selects(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_mirror_reads_the_enabled_providers_topics_or_its_own(helm: Path) -> None:
    # No provider and no source_topics: nothing to read, no mirror.
    assert "mirror" not in {component_of(d) for d in render(helm).docs}
    assert "mirror" not in {
        component_of(d)
        for d in render(helm, *sets(*open_providers("sinch"), "mirror.enabled=false")).docs
    }
    rendered = render(helm, *sets("mirror.source_topics={mms.events}", "mirror.replicaCount=3"))
    assert rendered.one("Deployment", "mirror")["spec"]["replicas"] == 3
    assert yaml.safe_load(rendered.config_text)["mirror"]["source_topics"] == ["mms.events"]


def test_mirror_flags_are_the_cli_s() -> None:
    from connector import cli

    if "mirror" not in cli.COMMANDS:
        pytest.skip("the connector has no mirror command yet (connector.cli.COMMANDS)")
    with pytest.raises(SystemExit) as done:
        cli.main(
            ["mirror", "--config", "/etc/mms-connector/config.yaml", "--port", "8081", "--help"]
        )
    assert done.value.code == 0


def test_irsa_role_by_service_account_annotation(helm: Path) -> None:
    role = "arn:aws:iam::123456789012:role/mms-media"
    rendered = render(
        helm,
        *sets(*open_providers("sinch")),
        "--set-string",
        rf"serviceAccount.annotations.eks\.amazonaws\.com/role-arn={role}",
    )
    account = rendered.one("ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    # No keys in the config: the store takes the default chain (web identity from the role).
    assert "access_key_id" not in yaml.safe_load(rendered.config_text)["media"]["s3"]
    for pod in (rendered.pod, rendered.mirror_pod):
        assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["media.store=filesystem"], True),  # 2 receivers by default
        (["media.store=filesystem", "replicaCount=1"], False),
        (["media.store=filesystem", "replicaCount=1", "autoscaling.enabled=true"], True),
        (["media.store=filesystem", "replicaCount=1", *open_providers("sinch")], True),  # mirror
        (
            [
                "media.store=filesystem",
                "replicaCount=1",
                *open_providers("sinch"),
                "mirror.enabled=false",
            ],
            False,
        ),
        ([], False),  # s3
    ],
)
def test_notes_warn_of_a_filesystem_store_shared_by_pods(
    helm: Path, tmp_path: Path, args: list[str], warned: bool
) -> None:
    notes = render_notes(helm, tmp_path, *sets(*args))
    assert ("WARNING: media.store is filesystem with more than one pod" in notes) == warned
    assert ("Media store: s3://mms-media/" in notes) == ("media.store=filesystem" not in args)
