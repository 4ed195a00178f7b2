"""scripts/cluster.sh itself, on the binaries it built: what the session's cluster cannot show."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.cluster.conftest import CLUSTER_SCRIPT
from tests.tools import unavailable


def test_a_component_slow_to_exec_is_not_taken_for_exited(tmp_path: Path) -> None:
    """Between the fork and the exec of its binary a component is a copy of the script's shell.
    CI once took etcd for exited in that gap on a loaded box and failed `up`; a setsid that
    takes a second to exec holds every component in that gap, so `up` must wait it out."""
    shim = tmp_path / "shim"
    shim.mkdir()
    slow = shim / "setsid"
    slow.write_text(f'#!/bin/sh\nsleep 1\nexec {shutil.which("setsid")} "$@"\n')
    slow.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim}:{os.environ['PATH']}",
        "MMS_CLUSTER_BUILD": "0",
        "MMS_CLUSTER_HOME": str(tmp_path / "run"),
        # Beside the session's cluster (16443, 16380-16384), not on it.
        "MMS_CLUSTER_PORT": "17443",
        "MMS_CLUSTER_PORT_BASE": "17380",
        "MMS_CLUSTER_NODES": "1",
    }

    def script(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(CLUSTER_SCRIPT), command], env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip

    try:
        up = script("up")
        if up.returncode == 3:
            unavailable("the cluster binaries are not built (scripts/cluster.sh build)")
        assert up.returncode == 0, up.stderr
        assert "exited" not in up.stderr
    finally:
        script("down")
