"""The image the Dockerfile builds, built for real by scripts/image.sh (podman, a stand-in base).

The image comes from $MMS_IMAGE when set (a reference in scripts/image.sh's storage), else from
scripts/image.sh, which makes the stand-in base and builds the image the first time (~2 min cold)
and reuses it while the Dockerfile, pyproject.toml, connector/ and schemas/ are unchanged
(MMS_IMAGE_BUILD=0: a cached image only, never build). Without podman the tests skip, except
in CI (CI set), where an image that was not checked must not look green.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.tools import REPO, built

SCRIPT = REPO / "scripts" / "image.sh"


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
    return built("image.sh", explicit_var="MMS_IMAGE", build_var="MMS_IMAGE_BUILD")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds and runs the container image (podman)")
