"""The built image run the way the chart runs it: uid 10001, read-only root, config mounted."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import obstore
import pytest
import yaml

from connector.devstack import Endpoints
from tests.helpers import payload
from tests.image.conftest import REPO, podman
from tests.live import free_port, read_topic, s3_bucket, s3_media
from tests.tools import CHART, compiled_modules

pytestmark = pytest.mark.image

# As the chart's pod: read-only root filesystem, a writable media directory only.
CHART_MEDIA = "/var/lib/mms-connector/media"
RESTRICTED = ["--read-only", "--tmpfs", f"{CHART_MEDIA}:rw,mode=1777"]


def run(image: str, *args: str, entrypoint: str | None = None, timeout: float = 120):
    head = ["run", "--rm", *RESTRICTED]
    if entrypoint is not None:
        head += ["--entrypoint", entrypoint]
    return podman(*head, image, *args, timeout=timeout)


def test_serve_help(image: str) -> None:
    proc = run(image, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: mms-connector serve" in proc.stdout


def test_the_translation_path_is_compiled(image: str) -> None:
    # The modules setup.py compiles are mypyc's extensions in the image, not their sources.
    code = (
        "import importlib, sys; print(*(importlib.import_module(n).__file__ for n in sys.argv[1:]))"
    )
    proc = run(image, "-c", code, *compiled_modules(), entrypoint="python")
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split()
    assert len(files) == len(compiled_modules()) and all(f.endswith(".so") for f in files), files


def test_runs_as_10001_on_a_read_only_root(image: str) -> None:
    proc = run(image, "-c", "id -u; id -g; touch /probe", entrypoint="sh")
    uid, gid, *_ = proc.stdout.split()
    assert (uid, gid) == ("10001", "10001")
    assert "Read-only file system" in proc.stderr


def test_image_config_matches_the_chart(image: str) -> None:
    proc = podman("image", "inspect", image)
    assert proc.returncode == 0, proc.stderr
    (info,) = json.loads(proc.stdout)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["mms-connector", "serve"]
    assert config["Cmd"] == ["--config", "/etc/mms-connector/config.yaml"]
    assert "8080/tcp" in config["ExposedPorts"]
    assert "MMS_SCHEMA_DIR=/app/schemas" in config["Env"]


def test_schemas_present(image: str) -> None:
    proc = run(image, "-1", "/app/schemas", entrypoint="ls")
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(p.name for p in (REPO / "schemas").glob("*.avsc"))


def test_no_pip_and_no_build_traces(image: str) -> None:
    proc = run(
        image,
        "-c",
        "command -v pip pip3 || true; ls /etc/pip.conf /root/.config/pip 2>/dev/null || true",
        entrypoint="sh",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_check_config_on_the_example(image: str) -> None:
    example = REPO / "config" / "example.yaml"
    proc = podman(
        "run", "--rm", *RESTRICTED, "-v", f"{example}:/etc/mms-connector/config.yaml:ro",
        "--entrypoint", "mms-connector", image, "check-config", "/etc/mms-connector/config.yaml",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout


def wait_ready(base: str, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            logs = podman("logs", name)
            pytest.fail(f"the container never got ready:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)


def helm_test_hook(helm: Path, image: str, port: int) -> subprocess.CompletedProcess[str]:
    """The chart's `helm test` pod's command, run in the image against a connector on `port`
    (the Service's name and port become 127.0.0.1 and that port)."""
    rendered = subprocess.run(
        [str(helm), "template", "mms", str(CHART), "--show-only", "templates/tests/readiness.yaml"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (container,) = yaml.safe_load(rendered.stdout)["spec"]["containers"]
    program, *options = container["command"]
    urls = [
        re.sub(r"^http://[^/]+/", f"http://127.0.0.1:{port}/", url) for url in container["args"]
    ]
    return podman(
        "run", "--rm", "--network", "host", *RESTRICTED, "--entrypoint", program,
        image, *options, *urls,
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("store", ["filesystem", "s3"])
def test_serves_a_callback_into_kafka_and_the_store(
    image: str, store: str, s3: Endpoints, tmp_path: Path, helm: Path
) -> None:
    """`podman run --network host`, as the chart runs it, on the stack's Kafka, registry and S3
    server: an OpenMarket MO POSTed to the container, its record read back from Kafka, and each
    of its parts read back from where the container stored it (a host directory mounted at the
    chart's media path, or the bucket). The chart's `helm test` command passes against it, and
    fails once it is gone."""
    topic = f"mms.image.{uuid.uuid4().hex[:8]}"
    port = free_port()
    media_dir = tmp_path / "media"
    media_dir.mkdir(mode=0o777)
    media_dir.chmod(0o777)  # the container's uid 10001 writes here
    prefix = f"test-image/{uuid.uuid4().hex[:12]}/"
    env: list[str] = []
    if store == "s3":
        settings, secrets = s3_media(s3, prefix)
        media: dict[str, Any] = {"store": "s3", "s3": settings}
        env = [f"--env={name}={value}" for name, value in secrets.items()]
    else:
        media = {"store": "filesystem", "root": CHART_MEDIA}
    config = {
        "kafka": {"bootstrap_servers": s3.bootstrap_servers, "flush_timeout_seconds": 10},
        "schema_registry": {"url": s3.registry_url},
        "server": {"host": "127.0.0.1", "port": port},
        "media": media,
        "providers": {
            "openmarket": {"enabled": True, "topic": topic, "auth": {"unauthenticated": True}}
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o644)
    name = f"mms-image-test-{uuid.uuid4().hex[:8]}"
    started = podman(
        "run", "-d", "--name", name, "--network", "host", "--read-only", *env,
        "-v", f"{media_dir}:{CHART_MEDIA}:rw", "-v", f"{path}:/etc/mms-connector/config.yaml:ro",
        image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, name)
        answer = httpx.post(
            f"{base}/callbacks/openmarket",
            content=payload("openmarket", "mo_several_images.eml"),
            headers={"Content-Type": 'multipart/mixed; boundary="b1"'},
            timeout=30,
        )
        assert (answer.status_code, answer.content) == (200, b""), answer.text
        hook = helm_test_hook(helm, image, port)
        assert hook.returncode == 0, hook.stderr
        assert hook.stdout.split() == [f"http://127.0.0.1:{port}/readyz", "200"]
    finally:
        podman("stop", "-t", "20", name, timeout=60)
        logs = podman("logs", name)
        podman("rm", "-f", name)
    assert helm_test_hook(helm, image, port).returncode != 0  # nothing serves there now
    assert "Traceback" not in logs.stderr, logs.stderr
    (record,) = read_topic(s3, topic)
    parts = record.value["media"]
    assert len(parts) == 4  # the SMIL, two JPEGs, the PNG
    for part in parts:
        assert part["status"] == "stored", part
        if store == "s3":
            key = part["uri"].removeprefix(f"s3://{s3.s3_bucket}/")
            content = bytes(obstore.get(s3_bucket(s3), key).bytes())
        else:
            assert part["uri"].startswith(f"file://{CHART_MEDIA}/"), part
            content = (media_dir / part["uri"].removeprefix(f"file://{CHART_MEDIA}/")).read_bytes()
        assert hashlib.sha256(content).hexdigest() == part["sha256"]
    if store == "filesystem":
        owners = {p.stat().st_uid for p in media_dir.rglob("*") if p.is_file()}
        assert owners == {10001}, owners
