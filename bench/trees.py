"""The connector from several source trees at closed-loop saturation, round by round:

    .venv/bin/python -m bench.trees --mix json --rounds 3 /tmp/before /tmp/after ...

Each tree (a checkout, e.g. a `git worktree` per commit) is served in turn with itself first on
PYTHONPATH, on the same stack and venv, `--rounds` times over, so every tree sees the same
drift of a shared, noisy box; the figure to compare is each tree's best (lowest) CPU ms per
callback. `--media-root` puts the media store elsewhere (a tmpfs: the connector's CPU without
the disk's). This is how each change of issue 14 was measured against the one before
(bench/results/2026-12-02-speed.md).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench import options, report, runner, stack
from bench.paths import RUNS, STACK_HOME


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="+", type=Path)
    p.add_argument("--mix", default="json")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--media-root", type=Path, default=RUNS, help="where each run's media go")
    p.add_argument("--stack-home", type=Path, default=STACK_HOME)
    p.add_argument("--keep-stack", action="store_true", help="leave Kafka and the registry up")
    args = p.parse_args()
    argv = ["--mix", args.mix, "--duration", str(args.duration), "--warmup", "2"]
    opts = options.parse([*argv, "--no-peer", "--stack-home", str(args.stack_home)], None)
    run = report.Run(started=report.now(), command="bench.trees", machine={}, options={}, commit="")
    args.media_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="trees-", dir=args.media_root))
    results: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    with stack.running(opts.stack_home, args.keep_stack) as endpoints:
        bench = runner.Bench(opts, run, workdir, endpoints)
        for round_no in range(args.rounds):
            for tree in args.trees:
                os.environ["PYTHONPATH"] = str(tree)
                topic = f"mms.trees.{bench.token}.{round_no}.{tree.name}"
                stack.create_topics(endpoints.bootstrap_servers, [topic, f"{topic}.dlq"])
                with bench.connector(topic) as (port, pid, _log):
                    sat = bench.measure("connector", "saturate", port, args.mix, pid, mode="closed")
                results[tree].append(sat["server_cpu_s_per_1000"])
    for tree, cpu in results.items():
        rounds = ", ".join(f"{c:.3f}" for c in cpu)
        print(f"{tree}: CPU ms per callback best {min(cpu):.3f} (rounds {rounds})")


if __name__ == "__main__":
    main()
