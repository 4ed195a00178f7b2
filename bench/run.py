"""One command for the connector's throughput and latency figures, side by side with the ceilings
and a peer, on the real local Kafka and registry (connector/devstack):

    .venv/bin/python -m bench.run --mix json --duration 20
    .venv/bin/python -m bench.run --soak            # 1 M callbacks, RSS sampled
    .venv/bin/python -m bench.run --workers 1,2     # 1 and 2 connector workers, same run
    .venv/bin/python -m bench.run --smoke           # seconds; exit 1 unless all 2xx (for CI)

Per mix, in one run: (a) a no-op Starlette endpoint under the connector's uvicorn settings,
the connector (`mms-connector serve`, production producer settings) closed-loop to find its
saturation rate, open-loop at a fraction of it for latency, open-loop past it for overload
behaviour; (b) the raw confluent-kafka producer with the same settings on the same encoded
records; and, for the JSON mix, the peer (bench/peer.py). Writes
bench/results/<date>-<what>.json and .md. See bench/README.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import options, payloads, procstat, report, runner, stack, targets
from bench.paths import REPO, RUNS


def main(argv: list[str] | None = None) -> int:
    opts = options.parse(argv, __doc__)
    if opts.build == "compiled":
        use_compiled_build()
    started = report.now()
    run = report.Run(
        started=started,
        command=report.command("bench.run", argv),
        machine=report.machine(),
        options=report.options_record(asdict(opts)),
        commit=report.commit_of(REPO),
    )
    opts.out.mkdir(parents=True, exist_ok=True)  # --profile writes there during the run
    RUNS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=RUNS))
    for note in payloads.left_out():
        print(f"note: {note}", flush=True)
        run.notes.append(note)
    print(
        f"load average {run.machine['loadavg_start']}; starting Kafka and the registry "
        f"in {opts.stack_home}",
        flush=True,
    )
    failed = False
    with stack.running(opts.stack_home, opts.keep_stack) as endpoints:
        bench = runner.Bench(opts, run, workdir, endpoints)
        if opts.smoke:
            failed = runner.smoke(bench, run)
        elif opts.soak:
            if runner.sendable(run, opts.mixes[0]):
                run.soak = runner.soak(bench, opts)
                targets.check_soak(run)
            else:
                failed = True
        else:
            runner.mixes(bench, run, opts)
    run.machine["loadavg_end"] = procstat.load_average()
    report.write(opts.out, f"{started[:10]}-{opts.what}", asdict(run), report.render(run))
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


def use_compiled_build() -> None:
    """Build the compiled connector if need be (the Makefile's rule) and have every connector
    this run starts import it (the schemas stay the checkout's)."""
    subprocess.run(["make", "-s", "build/compiled/.built"], cwd=REPO, check=True)
    os.environ["PYTHONPATH"] = str(REPO / "build" / "compiled")
    os.environ["MMS_SCHEMA_DIR"] = str(REPO / "schemas")


if __name__ == "__main__":
    sys.exit(main())
