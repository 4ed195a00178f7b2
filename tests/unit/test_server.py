"""Process-wide tuning `serve` applies before serving (in a child process: it is global)."""

from __future__ import annotations

import subprocess
import sys


def test_tune_memory_sets_rare_collections_and_freezes_start_up_objects() -> None:
    code = (
        "import gc; from connector.server import tune_memory; tune_memory(); "
        "print(gc.get_threshold(), gc.get_freeze_count() > 10000)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(50000, 20, 20) True"
