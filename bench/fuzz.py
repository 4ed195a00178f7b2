"""The long fuzz run: the CI fuzz stage's families (tests/fuzzing.py), for as long as you like.

    .venv/bin/python -m bench.fuzz --seconds 600                      # every provider
    .venv/bin/python -m bench.fuzz --seconds 120 --provider sinch
    .venv/bin/python -m bench.fuzz --provider openmarket --family multipart --seed 12345 \\
        --examples 200                                                # replay one batch

Batches of `--examples` samples go round the (provider, family) pairs until `--seconds` have
passed, each from a fresh random seed that is printed first, so any batch replays exactly with
`--provider --family --seed --examples`. A sample that breaks the property (anything but a clean
refusal, or a record that cannot be produced) is shrunk by hypothesis and saved under `--out`
(body and a JSON description); the run goes on. At the end: examples, records, refusals by code
and failures per provider, also written to `--out`/summary.json. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.paths import RUNS
from tests import fuzzing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long to go on (default 600)")
    p.add_argument("--provider", action="append", choices=sorted(fuzzing.TARGETS))
    p.add_argument("--family", action="append", help="only these families (default: all)")
    p.add_argument("--seed", type=int, help="one batch per family from this seed, then stop")
    p.add_argument("--examples", type=int, default=200, help="samples per batch (default 200)")
    p.add_argument("--out", type=Path, default=RUNS / "fuzz")
    args = p.parse_args(argv)

    # The pipeline logs what its safety nets catch; those are counted here as failures.
    logging.getLogger("connector").setLevel(logging.CRITICAL)
    pairs = [
        (target, family)
        for name in args.provider or sorted(fuzzing.TARGETS)
        for target in [fuzzing.TARGETS[name]]
        for family in target.families
        if not args.family or family in args.family
    ]
    if not pairs:
        p.error("no family of these providers has that name")
    args.out.mkdir(parents=True, exist_ok=True)
    stats = {name: fuzzing.Stats() for name in {t.name for t, _ in pairs}}
    failures: list[dict[str, Any]] = []
    media_root = Path(tempfile.mkdtemp(prefix="media-", dir=args.out))
    started = time.monotonic()
    batches = 0
    try:
        for target, family, seed in schedule(pairs, args.seed, started + args.seconds):
            batches += 1
            print(f"{target.name}/{family} seed {seed}", flush=True)
            failure = batch(target, family, seed, args.examples, media_root, stats[target.name])
            if failure is not None:
                failures.append(failure | save(args.out, failure, stats[target.name]))
                print(f"  FAILED: {failure['error']}\n  replay: {failure['replay']}", flush=True)
    finally:
        shutil.rmtree(media_root, ignore_errors=True)
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "batches": batches,
        "examples_per_batch": args.examples,
        "providers": {
            name: {
                "examples": s.examples,
                "records": s.records,
                "refusals": dict(s.refusals.most_common()),
                "failures": sum(f["provider"] == name for f in failures),
            }
            for name, s in sorted(stats.items())
        },
        "failures": failures,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(render(summary))
    return 1 if failures else 0


def schedule(
    pairs: list[tuple[fuzzing.Target, str]], seed: int | None, deadline: float
) -> Iterator[tuple[fuzzing.Target, str, int]]:
    """With a seed: each pair once from it. Else the pairs in turn, each batch from a fresh
    random seed, until the deadline."""
    if seed is not None:
        yield from ((target, family, seed) for target, family in pairs)
        return
    rng = random.SystemRandom()
    for target, family in itertools.cycle(pairs):
        if time.monotonic() >= deadline:
            return
        yield target, family, rng.getrandbits(32)


def batch(
    target: fuzzing.Target,
    family: str,
    seed: int,
    examples: int,
    media_root: Path,
    stats: fuzzing.Stats,
) -> dict[str, Any] | None:
    """Run one batch; what failed (and how to replay it), or None."""
    try:
        fuzzing.run(
            target, family, seed=seed, examples=examples, media_root=media_root, stats=stats
        )
    except Exception as exc:  # the property broke: report it, go on with the next batch
        notes = "\n".join(getattr(exc, "__notes__", []))
        return {
            "provider": target.name,
            "family": family,
            "seed": seed,
            "error": f"{type(exc).__name__}: {str(exc)[:500]}",
            "cause": repr(exc.__cause__)[:500] if exc.__cause__ else None,
            "notes": notes[:2000],
            "replay": f".venv/bin/python -m bench.fuzz --provider {target.name} "
            f"--family {family} --seed {seed} --examples {examples}",
        }
    return None


def save(out: Path, failure: dict[str, Any], stats: fuzzing.Stats) -> dict[str, str]:
    """The shrunk failing sample as files: its body, and the rest as JSON."""
    sample = stats.failure
    if sample is None:
        return {}
    stem = out / f"{failure['provider']}-{failure['family']}-{failure['seed']}"
    stem.with_suffix(".body").write_bytes(sample.body)
    described = {
        "content_type": sample.content_type,
        "headers": sample.headers,
        "limits": asdict(sample.limits),
        "default_country": sample.default_country,
        "failure": failure,
    }
    stem.with_suffix(".json").write_text(json.dumps(described, indent=1))
    return {"body_file": str(stem.with_suffix(".body"))}


def render(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['batches']} batches in {summary['seconds']} s",
        "",
        "| provider | examples | records | refusals | top refusal codes | failures |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summary["providers"].items():
        codes = Counter(s["refusals"])
        top = ", ".join(f"{code} {n}" for code, n in codes.most_common(6))
        lines.append(
            f"| {name} | {s['examples']} | {s['records']} | {codes.total()} | {top} "
            f"| {s['failures']} |"
        )
    for f in summary["failures"]:
        lines += ["", f"FAILED {f['provider']}/{f['family']} seed {f['seed']}: {f['error']}"]
        lines += [f"  replay: {f['replay']}", f"  body: {f.get('body_file')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
