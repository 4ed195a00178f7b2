"""The built tools some suites need (helm, the image, the cluster): found or built by the
project's scripts, skipped when missing, except in CI (CI set), where a check that did not run
must not look green."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "mms-connector"


def compiled_modules() -> list[str]:
    """The modules setup.py has mypyc compile (its COMPILED), read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED":
            paths: list[str] = ast.literal_eval(node.value)
            return [p.removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py has no COMPILED list")


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where everything these tests need is installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: not skipping)", pytrace=False)
    pytest.skip(reason)


def built(script: str, *args: str, explicit_var: str, build_var: str) -> str:
    """The last line `scripts/<script> [--cached-only]` prints (a path or an image reference),
    or $explicit_var when set; $build_var=0 takes what is cached only, never building."""
    if explicit := os.environ.get(explicit_var):
        return explicit
    cmd = ["bash", str(REPO / "scripts" / script), *args]
    if os.environ.get(build_var) == "0":
        cmd.append("--cached-only")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"scripts/{script} failed: {exc}")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        unavailable(f"scripts/{script} exit {proc.returncode}: {tail}")
    return proc.stdout.strip().splitlines()[-1]


def obtain_helm() -> Path:
    """helm from $MMS_HELM, else scripts/helm.sh (built from the Go module proxy once, into
    ~/.cache/mms-connector/helm; MMS_HELM_BUILD=0: a cached build only)."""
    path = Path(built("helm.sh", explicit_var="MMS_HELM", build_var="MMS_HELM_BUILD"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        unavailable(f"{path} is not an executable file")
    return path
