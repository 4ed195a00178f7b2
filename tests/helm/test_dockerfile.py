"""The Dockerfile and the chart agree: user, port, config path, media path, schema directory.

No container engine runs in CI, so the image is not built; this reads the Dockerfile instead and
compares it with the chart's values and rendered Deployment.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from connector import codec
from tests.helm.conftest import Rendered
from tests.tools import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Instruction:
    op: str
    args: str


def parse_stages(text: str) -> list[list[Instruction]]:
    """Instructions per stage, line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in lines:
        op, _, args = line.partition(" ")
        if op.upper() == "FROM":
            stages.append([])
        elif not stages:
            continue  # ARG before the first FROM
        stages[-1].append(Instruction(op.upper(), args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[list[Instruction]]) -> list[Instruction]:
    return stages[-1]


def _only(stage: list[Instruction], op: str) -> str:
    found = [i.args for i in stage if i.op == op]
    assert len(found) == 1, f"expected one {op}, found {found}"
    return found[0]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for args in (i.args for i in stage if i.op == "ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def _run_text(stage: list[Instruction]) -> str:
    return "\n".join(i.args for i in stage if i.op == "RUN")


def test_multi_stage_slim_base_without_build_tools(
    stages: list[list[Instruction]], final: list[Instruction]
) -> None:
    assert len(stages) >= 2
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", base.group(1))
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", text, re.M)
    runs = _run_text(final)
    for tool in ("gcc", "build-essential", "apt-get install", "pip install", "make "):
        assert tool not in runs, tool
    copies = [i.args for i in final if i.op == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies


def test_runs_as_the_chart_user(final: list[Instruction], default_values: dict) -> None:
    user, _, group = _only(final, "USER").partition(":")
    pod = default_values["podSecurityContext"]
    assert int(user) == pod["runAsUser"] == 10001
    assert int(group) == pod["runAsGroup"] == 10001
    # The user exists in the image with that id.
    assert re.search(r"useradd .*--uid 10001 ", _run_text(final))
    assert pod["runAsNonRoot"] is True


def test_port_matches(
    final: list[Instruction], default_values: dict, default_render: Rendered
) -> None:
    exposed = int(_only(final, "EXPOSE"))
    assert exposed == default_values["containerPort"] == 8080
    assert default_render.container["ports"][0]["containerPort"] == exposed
    assert yaml.safe_load(default_render.config_text)["server"]["port"] == exposed


def test_entrypoint_serves_the_mounted_config(
    final: list[Instruction], default_render: Rendered
) -> None:
    entrypoint = json.loads(_only(final, "ENTRYPOINT"))
    cmd = json.loads(_only(final, "CMD"))
    assert entrypoint == ["mms-connector", "serve"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mms-connector"] == "connector.cli:main"
    # The chart passes the same arguments the image defaults to.
    assert default_render.container["args"] == cmd == ["--config", "/etc/mms-connector/config.yaml"]
    config_dir, _, file_name = cmd[1].rpartition("/")
    mounts = {m["name"]: m["mountPath"] for m in default_render.container["volumeMounts"]}
    assert mounts["config"] == config_dir
    assert file_name in default_render.one("ConfigMap")["data"]


def test_media_path_is_owned_by_the_user(
    final: list[Instruction], filesystem_render: Rendered
) -> None:
    media = yaml.safe_load(filesystem_render.config_text)["media"]["root"]
    mounts = {m["name"]: m["mountPath"] for m in filesystem_render.container["volumeMounts"]}
    assert mounts["media"] == media == "/var/lib/mms-connector/media"
    runs = _run_text(final)
    assert f"mkdir -p /etc/mms-connector {media}" in runs
    assert f"chown 10001:10001 {media}" in runs


def test_schemas_are_in_the_image_where_the_codec_looks(
    final: list[Instruction], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(final)
    schema_dir = env["MMS_SCHEMA_DIR"]
    assert schema_dir == "/app/schemas"
    assert "schemas/ /app/schemas/" in [i.args for i in final if i.op == "COPY"]
    monkeypatch.setenv("MMS_SCHEMA_DIR", schema_dir)
    assert codec.schema_dir() == Path(schema_dir)  # the variable the codec reads
    assert list((REPO / "schemas").glob("*.avsc")), "no schema to copy into the image"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # read-only root filesystem


def test_pre_stop_command_exists_in_the_image(default_render: Rendered) -> None:
    # The chart's preStop runs `sleep` from the image: a Debian slim base has coreutils.
    command = default_render.container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert re.search(r"^ARG PYTHON_IMAGE=python:\S+-slim", DOCKERFILE.read_text(), re.M)


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    assert {"!pyproject.toml", "!setup.py", "!connector/", "!schemas/"} <= set(rules)
    copied = {
        source.rstrip("/")
        for stage in parse_stages(DOCKERFILE.read_text())
        for i in stage
        if i.op == "COPY" and not i.args.startswith("--from")
        for source in i.args.split()[:-1]
    }
    assert copied == {"pyproject.toml", "setup.py", "connector", "schemas"}


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
