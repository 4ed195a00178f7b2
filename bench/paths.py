"""Where the benchmarks live and what they run: the repository, result and scratch directories,
and this interpreter's venv (whose `mms-connector` is the connector under test)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"  # what backs a claim, committed
RUNS = BENCH / ".runs"  # scratch: work directories, smoke results (ignored by git)
STACK_HOME = BENCH / ".stack"  # the benchmarks' own devstack
PY = sys.executable
VENV_BIN = Path(PY).parent
MMS_CONNECTOR = str(VENV_BIN / "mms-connector")
