"""The image the Dockerfile builds, built for real by scripts/image.sh (podman, a stand-in base).

The image comes from $MMS_IMAGE when set (a reference in scripts/image.sh's storage), else from
scripts/image.sh, which makes the stand-in base and builds the image the first time (~2 min cold)
and reuses it while the Dockerfile, pyproject.toml, connector/ and schemas/ are unchanged
(MMS_IMAGE_BUILD=0: a cached image only, never build). Without podman the tests skip, except
in CI (CI set), where an image that was not checked must not look green.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helm.conftest import helm  # noqa: F401 (fixture: the chart's `helm test` command)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "image.sh"


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: not skipping)", pytrace=False)
    pytest.skip(reason)


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """podman with scripts/image.sh's configuration (its storage, runc, ulimits)."""
    return subprocess.run(
        ["bash", str(SCRIPT), "podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def image() -> str:
    if explicit := os.environ.get("MMS_IMAGE"):
        return explicit
    cmd = ["bash", str(SCRIPT)]
    if os.environ.get("MMS_IMAGE_BUILD") == "0":
        cmd.append("--cached-only")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"the image could not be built: {exc}")
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        unavailable(f"scripts/image.sh exit {proc.returncode}: {tail}")
    return proc.stdout.strip().splitlines()[-1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds and runs the container image (podman)")
