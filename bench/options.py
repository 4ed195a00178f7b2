"""The command line of `python -m bench.run` (`Options`), and the options every benchmark that
starts the stack and writes result files shares (`add_stack_and_output`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench import payloads
from bench.paths import RESULTS, RUNS, STACK_HOME


@dataclass
class Options:
    mixes: list[str]
    duration: float
    warmup: float
    connections: int
    load_fraction: float
    fractions: list[float]
    overload_factor: float
    max_connections: int
    max_in_flight: int
    peer: bool
    ceilings: bool
    profile: float
    soak: bool
    soak_count: int
    soak_rate: float
    soak_warmup: float
    dedupe_max_entries: int
    media_stores: list[str]
    workers: list[int]
    shared_window: bool
    smoke: bool
    build: str
    stack_home: Path
    keep_stack: bool
    out: Path
    what: str


def add_stack_and_output(
    p: argparse.ArgumentParser,
    what: str | None,
    what_help: str = "name in the result files",
) -> None:
    """--stack-home, --keep-stack, --out and --what (default `what`)."""
    p.add_argument(
        "--stack-home",
        type=Path,
        default=STACK_HOME,
        help="devstack home for the benchmark's own Kafka and registry",
    )
    p.add_argument("--keep-stack", action="store_true", help="leave Kafka and the registry up")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--what", default=what, help=what_help)


def parse(argv: list[str] | None, description: str | None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mix",
        action="append",
        choices=[*payloads.MIXES, "all"],
        help="callback mix (repeatable; 'all' = every mix); default json",
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each")
    p.add_argument(
        "--connections",
        type=int,
        default=64,
        help="closed-loop senders; connections opened up front in open loop",
    )
    p.add_argument("--max-connections", type=int, default=2000, help="open-loop cap")
    p.add_argument(
        "--load-fraction",
        type=float,
        default=0.7,
        help="open-loop rate as a share of the saturation rate",
    )
    p.add_argument(
        "--sweep",
        default="",
        metavar="F,F,...",
        help="more open-loop rates as shares of saturation, e.g. 0.3,0.5,0.9 (latency curve)",
    )
    p.add_argument(
        "--overload-factor",
        type=float,
        default=1.5,
        help="overload rate as a multiple of the saturation rate",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=0,
        help="connector server.max_in_flight (default: the connector's own)",
    )
    p.add_argument("--no-peer", action="store_true", help="skip the peer")
    p.add_argument("--no-ceilings", action="store_true", help="skip ceilings (a) and (b)")
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also py-spy the connector at saturation for this long",
    )
    p.add_argument("--soak", action="store_true", help="1 M callbacks open loop, RSS sampled")
    p.add_argument("--soak-count", type=int, default=1_000_000)
    p.add_argument(
        "--soak-rate",
        type=float,
        default=0.0,
        help="soak arrival rate; default --load-fraction x a 10 s saturation run",
    )
    p.add_argument("--soak-warmup", type=float, default=60.0, help="seconds before RSS counts")
    p.add_argument(
        "--dedupe-max-entries",
        type=int,
        default=0,
        help="connector dedupe.max_entries (default: the connector's own, 1,000,000)",
    )
    p.add_argument(
        "--media-store",
        choices=["filesystem", "s3", "both"],
        default="filesystem",
        help="the connector's media store (s3: the stack's S3Proxy); both: the connector's "
        "phases once per store, filesystem first (its figures are the ones checked)",
    )
    p.add_argument(
        "--workers",
        default="1",
        metavar="N[,N...]",
        help="the connector's server.workers (default 1, the connector's own); several, e.g. "
        "1,2: the connector's phases once per value, in that order, in the same run (the first "
        "value's figures are the ones checked); any value > 1 turns on --shared-window for all",
    )
    p.add_argument(
        "--shared-window",
        action="store_true",
        help="the connector's dedupe.shared on the stack's Redis (on with --workers > 1)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds at 200/s; exit 1 unless every callback was acked",
    )
    p.add_argument(
        "--build",
        choices=["compiled", "pure"],
        default="compiled",
        help="the connector as the image runs it (compiled: setup.py's modules by mypyc, built "
        "by `make build/compiled/.built`) or as a development install runs it (pure Python)",
    )
    add_stack_and_output(p, None, "name in the result files (default: the mixes, soak, smoke)")
    a = p.parse_args(argv)
    workers = _workers(p, a.workers)
    mixes = a.mix or ["json"]
    if "all" in mixes:
        mixes = list(payloads.MIXES)
    what = a.what or ("smoke" if a.smoke else "soak" if a.soak else "-".join(mixes))
    # A smoke run backs no claim: its results go with the scratch files unless --out says.
    out = a.out if not a.smoke or a.out != RESULTS else RUNS
    return Options(
        mixes=mixes,
        duration=a.duration,
        warmup=a.warmup,
        connections=a.connections,
        load_fraction=a.load_fraction,
        fractions=sorted({a.load_fraction, *(float(f) for f in a.sweep.split(",") if f)}),
        overload_factor=a.overload_factor,
        max_connections=a.max_connections,
        max_in_flight=a.max_in_flight,
        peer=not a.no_peer,
        ceilings=not a.no_ceilings,
        profile=a.profile,
        soak=a.soak,
        soak_count=a.soak_count,
        soak_rate=a.soak_rate,
        soak_warmup=a.soak_warmup,
        dedupe_max_entries=a.dedupe_max_entries,
        media_stores=["filesystem", "s3"] if a.media_store == "both" else [a.media_store],
        workers=workers,
        shared_window=a.shared_window or max(workers) > 1,
        smoke=a.smoke,
        build=a.build,
        stack_home=a.stack_home.resolve(),
        keep_stack=a.keep_stack,
        out=out.resolve(),
        what=what,
    )


def _workers(p: argparse.ArgumentParser, text: str) -> list[int]:
    """`--workers 1,2` as [1, 2] (in order, each once)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        p.error(f"--workers: whole numbers, comma-separated, not {text!r}")
    if not values or min(values) < 1:
        p.error("--workers: at least one value, each >= 1")
    return list(dict.fromkeys(values))
