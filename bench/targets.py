"""The targets a `python -m bench.run` is checked against (the Markdown's "Targets" table):
throughput floors, a share of the no-op endpoint, latency below saturation, load shedding past
it, per-core against the peer, RSS over a soak, every callback acked in a smoke run."""

from __future__ import annotations

from typing import Any

from bench.options import Options
from bench.report import Run

# Issue 14's floors: callbacks per CPU-second against the peer in the same run (JSON), XML
# against JSON, and multipart against the 349 per CPU-second it started from.
PEER_FLOOR = 0.6
XML_OF_JSON = 0.8
MULTIPART_PER_CORE = 1050


def check(run: Run, what: str, ok: bool | None, detail: str) -> None:
    run.checks.append({"target": what, "met": ok, "measured": detail})


def checks_for_mix(run: Run, mix: str, phases: list[dict[str, Any]], opts: Options) -> None:
    by = {(p["system"], p["phase"]): p for p in phases if p.get("mix") == mix}
    sat = by.get(("connector", "saturate"))
    if sat is None:
        return
    floor = {"json": 5000, "xml": 4000, "multipart": 1500}.get(mix)
    if floor:
        check(
            run,
            f"{mix}: >= {floor}/s acknowledged",
            sat["acked_per_s"] >= floor,
            f"{sat['acked_per_s']}/s",
        )
    noop = by.get(("noop", "saturate"))
    if noop and noop["acked_per_s"]:
        share = sat["acked_per_s"] / noop["acked_per_s"]
        check(
            run,
            f"{mix}: >= 70 % of the no-op endpoint",
            share >= 0.7,
            f"{100 * share:.0f} % ({sat['acked_per_s']} / {noop['acked_per_s']})",
        )
    at = by.get(("connector", f"{round(opts.load_fraction * 100)}%"))
    if at:
        p99 = at["latency_ms"]["p99"]
        check(
            run,
            f"{mix}: p99 <= 25 ms at {round(opts.load_fraction * 100)} % of saturation",
            p99 is not None and p99 <= 25,
            f"p99 {p99} ms at {at['offered_per_s']}/s",
        )
        bad = at["counts"]["5xx"]
        check(run, f"{mix}: no 5xx below saturation", bad == 0, f"{at['counts']}")
    over = by.get(("connector", "overload"))
    if over:
        c = over["counts"]
        bounded = c["503"] > 0 and c["503_with_retry_after"] == c["503"] and c["other"] == 0
        check(
            run,
            f"{mix}: past saturation, 503 + Retry-After (bounded in flight)",
            bounded,
            f"offered {over['offered_per_s']}/s: 2xx {c['2xx']}, 503 {c['503']} "
            f"({c['503_with_retry_after']} with Retry-After), other {c['other']}, "
            f"p99 {over['latency_all_ms']['p99']} ms, max {over['latency_all_ms']['max']} ms, "
            f"{over['client_in_flight_max']} requests in flight at most",
        )


def compare_stores(run: Run, mix: str, stores: list[str], workers: int = 1) -> None:
    """The connector at saturation with each media store, side by side (a figure, no target)."""
    sats = {
        p["media_store"]: p
        for p in run.phases
        if p["system"] == "connector"
        and p["mix"] == mix
        and p["phase"] == "saturate"
        and p.get("workers", 1) == workers
    }
    if len(stores) < 2 or not all(s in sats for s in stores):
        return
    check(
        run,
        f"{mix}: callbacks per CPU-second at saturation, " + " beside ".join(stores),
        None,
        "; ".join(
            f"{s}: {sats[s]['acked_per_s']}/s, {sats[s]['acked_per_core_s']} per core-s "
            f"(S3Proxy {sats[s]['cpu_s'].get('s3')} CPU s)"
            for s in stores
        ),
    )


def workers_label(n: int) -> str:
    return f"{n} worker" + ("s" if n != 1 else "")


def compare_workers(run: Run, mix: str, store: str, workers: list[int]) -> None:
    """The connector at saturation with each `server.workers`, side by side, and each against
    the first (a figure, no target)."""
    sats = {
        p["workers"]: p
        for p in run.phases
        if p["system"] == "connector"
        and p["mix"] == mix
        and p["phase"] == "saturate"
        and p.get("media_store") == store
        and "workers" in p
    }
    if len(workers) < 2 or not all(n in sats for n in workers):
        return
    base = sats[workers[0]]

    def ratio(p: dict[str, Any], key: str) -> str:
        return f"{p[key] / base[key]:.2f}" if p[key] and base[key] else "n/a"

    check(
        run,
        f"{mix}: callbacks/s and per CPU-second at saturation, "
        + " beside ".join(workers_label(n) for n in workers),
        None,
        "; ".join(
            f"{workers_label(n)}: {sats[n]['acked_per_s']}/s at {sats[n]['server_cores']} cores, "
            f"{sats[n]['acked_per_core_s']} per core-s"
            + (
                ""
                if n == workers[0]
                else f" (x {ratio(sats[n], 'acked_per_s')} per s, "
                f"x {ratio(sats[n], 'acked_per_core_s')} per core-s)"
            )
            for n in workers
        ),
    )


def saturation(run: Run, system: str, mix: str) -> dict[str, Any] | None:
    """The (first) closed-loop saturation phase of `system` on `mix`."""
    return next(
        (
            p
            for p in run.phases
            if p["system"] == system and p["mix"] == mix and p["phase"] == "saturate"
        ),
        None,
    )


def check_mix(run: Run, mix: str, opts: Options) -> None:
    """Every target of one mix's phases; the first media store's and the first `--workers`
    value's figures are the ones checked."""
    first, workers = opts.media_stores[0], opts.workers[0]
    primary = [
        p
        for p in run.phases
        if p.get("media_store", first) == first and p.get("workers", workers) == workers
    ]
    checks_for_mix(run, mix, primary, opts)
    compare_stores(run, mix, opts.media_stores, workers)
    compare_workers(run, mix, first, opts.workers)
    ours = saturation(run, "connector", mix)
    if ours is None or not ours["acked_per_core_s"]:
        return
    per_core = ours["acked_per_core_s"]
    peer_sat = saturation(run, "peer", mix)
    if peer_sat and peer_sat["acked_per_core_s"]:
        ratio = per_core / peer_sat["acked_per_core_s"]
        check(
            run,
            f"{mix}: acked per core against the peer's (>= 0.6x required; 0.75x, 1.0x beyond)",
            ratio >= PEER_FLOOR,
            f"{ratio:.2f}x: {per_core} vs {peer_sat['acked_per_core_s']} callbacks per CPU-second",
        )
    json_sat = saturation(run, "connector", "json")
    if mix == "xml" and json_sat and json_sat["acked_per_core_s"]:
        ratio = per_core / json_sat["acked_per_core_s"]
        check(
            run,
            f"xml: acked per core >= {XML_OF_JSON}x the JSON mix's",
            ratio >= XML_OF_JSON,
            f"{ratio:.2f}x: {per_core} vs {json_sat['acked_per_core_s']} per CPU-second",
        )
    if mix == "multipart":
        check(
            run,
            f"multipart: >= {MULTIPART_PER_CORE} acked per CPU-second (3x issue 14's 349)",
            per_core >= MULTIPART_PER_CORE,
            f"{per_core} per CPU-second ({per_core / 349:.2f}x)",
        )


def check_soak(run: Run) -> None:
    s = run.soak
    check(
        run,
        "soak: RSS within 10 % after warm-up",
        s["growth_pct"] <= 10,
        f"{s['rss_mb_warm']} -> {s['rss_mb_end']} MB ({s['growth_pct']} %)",
    )


def check_smoke(run: Run, mix: str, phase: dict[str, Any]) -> bool:
    """Whether every callback of a smoke phase was acked (and the check that says so)."""
    c = phase["counts"]
    others = ("503", "other", "connection_errors", "unanswered")
    ok = c["2xx"] > 0 and all(c[k] == 0 for k in others)
    check(run, f"smoke {mix}: every callback acked", ok, str(phase["counts"]))
    return ok
