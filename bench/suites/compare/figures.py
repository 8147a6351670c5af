"""The figures of a run per target (pooled TTFC, added over direct, medians of the rounds) and
their table."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from harness.stats import percentile, summary
from harness.tables import Table, ms, plus_ms

from suites.compare.loads import LoadRun, Samples
from suites.compare.plan import DIRECT, NGINX, Plan


def median_of(runs: list[LoadRun], value: Callable[[LoadRun], float]) -> float:
    return statistics.median(value(r) for r in runs)


ADDED = (("c1", 50), ("c1", 99), ("cn_paced", 99), ("cn", 99))


def added(mine: list[float], direct: list[float], q: float, rounds: int) -> tuple[float, float]:
    """A relay's percentile minus direct's: over the pooled samples, and the median over
    the rounds of each round's (one round disturbed by the host moves only the first)."""
    pooled = percentile(mine, q) - percentile(direct, q)
    size, base = len(mine) // rounds, len(direct) // rounds
    by_round = [
        percentile(mine[i * size : (i + 1) * size], q)
        - percentile(direct[i * base : (i + 1) * base], q)
        for i in range(rounds)
    ]
    return pooled, statistics.median(by_round)


def figures(samples: dict[str, Samples], rounds: int) -> dict[str, dict[str, Any]]:
    direct = samples[DIRECT]
    out: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        f: dict[str, Any] = {
            "ttfc_c1": summary(s.ttfc_c1),
            "ttfc_cn": summary(s.ttfc_cn),
            "ttfc_cn_paced": summary(s.ttfc_cn_paced),
        }
        for key, q in ADDED:
            mine, base = getattr(s, f"ttfc_{key}"), getattr(direct, f"ttfc_{key}")
            f[f"added_{key}_p{q}"], f[f"added_{key}_p{q}_rounds"] = added(mine, base, q, rounds)
        f |= {
            "messages_per_s": median_of(s.fast, lambda r: r.messages / r.wall_s),
            "messages_per_chunk": sum(r.messages for r in s.fast) / sum(r.chunks for r in s.fast),
            "fast_busy": median_of(s.fast, lambda r: r.cpu_s / r.wall_s),
            "fast_waiting": median_of(s.fast, lambda r: r.wait_s / r.wall_s),
            "load_side_busy": median_of(s.fast, lambda r: r.load_side_cpu_s / r.wall_s),
        }
        if s.disconnect:
            f["disconnect"] = summary(s.disconnect)
        if name != DIRECT:
            f["cpu_fast"] = median_of(s.fast, lambda r: r.cpu_ms_per_1000)
            f["cpu_paced"] = median_of(s.paced, lambda r: r.cpu_ms_per_1000)
            f["cpu_per_request"] = sum(r.cpu_s for r in s.short) / sum(r.requests for r in s.short)
            c1 = s.short_c1
            f["cpu_per_request_c1"] = sum(r.cpu_s for r in c1) / sum(r.requests for r in c1)
        out[name] = f
    for f in out.values():
        f["throughput_share"] = f["messages_per_s"] / out[DIRECT]["messages_per_s"]
        if "cpu_fast" in f:
            f["cpu_fast_vs_nginx"] = f["cpu_fast"] / out[NGINX]["cpu_fast"]
            f["cpu_paced_vs_nginx"] = f["cpu_paced"] / out[NGINX]["cpu_paced"]
    return out


def figures_table(figs: dict[str, dict[str, Any]], plan: Plan) -> Table:
    names = list(figs)
    table = Table(["", *names])

    def row(label: str, cell: Callable[[dict[str, Any]], str], relays_only: bool = False) -> None:
        table.add(label, *("" if relays_only and n == DIRECT else cell(figs[n]) for n in names))

    n1, nn = plan.c1_requests * plan.rounds, plan.cn_requests * plan.rounds
    table.add(f"concurrency 1: {n1} requests x {plan.short_tokens} tokens per target")
    row("  TTFC p50", lambda f: ms(f["ttfc_c1"]["p50"]))
    row("  TTFC p99", lambda f: ms(f["ttfc_c1"]["p99"]))
    row("  added p50", lambda f: plus_ms(f["added_c1_p50"]), True)
    row("  added p99", lambda f: plus_ms(f["added_c1_p99"]), True)
    row("  added p99, median of rounds", lambda f: plus_ms(f["added_c1_p99_rounds"]), True)
    row("  relay CPU per request", lambda f: ms(f["cpu_per_request_c1"]), True)
    np = plan.cn_paced_requests * plan.rounds
    table.add(
        f"concurrency {plan.concurrency}, paced: {np} requests x {plan.cn_paced_tokens} tokens, "
        f"{plan.cn_paced_delay_ms:g} ms apart, streams started evenly spread"
    )
    row("  TTFC p50", lambda f: ms(f["ttfc_cn_paced"]["p50"]))
    row("  TTFC p99", lambda f: ms(f["ttfc_cn_paced"]["p99"]))
    row("  added p99", lambda f: plus_ms(f["added_cn_paced_p99"]), True)
    row("  added p99, median of rounds", lambda f: plus_ms(f["added_cn_paced_p99_rounds"]), True)
    table.add(
        f"concurrency {plan.concurrency}, back to back: {nn} requests x {plan.short_tokens} "
        "tokens, no delay"
    )
    row("  TTFC p50", lambda f: ms(f["ttfc_cn"]["p50"]))
    row("  TTFC p99", lambda f: ms(f["ttfc_cn"]["p99"]))
    row("  added p99", lambda f: plus_ms(f["added_cn_p99"]), True)
    row("  added p99, median of rounds", lambda f: plus_ms(f["added_cn_p99_rounds"]), True)
    row("  relay CPU per request (both)", lambda f: ms(f["cpu_per_request"]), True)
    table.add(f"{plan.streams} streams x {plan.fast_tokens} tokens, no delay (median of rounds)")
    row("  messages/s", lambda f: f"{f['messages_per_s']:,.0f}")
    row("  share of direct", lambda f: f"{f['throughput_share']:.0%}", True)
    row("  relay CPU per 1000 messages", lambda f: ms(f["cpu_fast"] / 1e3), True)
    row("    ratio to nginx", lambda f: f"x{f['cpu_fast_vs_nginx']:.2f}", True)
    row("  messages per chunk received", lambda f: f"{f['messages_per_chunk']:.1f}")
    row("  relay busy / waiting", lambda f: f"{f['fast_busy']:.0%} / {f['fast_waiting']:.0%}", True)
    row("  upstream + load generator busy", lambda f: f"{f['load_side_busy']:.0%}")
    table.add(
        f"{plan.streams} streams x {plan.paced_tokens} tokens, "
        f"{plan.paced_delay_ms:g} ms apart (median of rounds)"
    )
    row("  relay CPU per 1000 messages", lambda f: ms(f["cpu_paced"] / 1e3), True)
    row("    ratio to nginx", lambda f: f"x{f['cpu_paced_vs_nginx']:.2f}", True)
    table.add(
        f"hang up after {plan.disconnect_after} messages (beside {plan.background_streams} "
        f"streams, a token every {plan.background_delay_ms:g} ms) until the upstream sees it"
    )
    row("  p50", lambda f: ms(f["disconnect"]["p50"]) if "disconnect" in f else "")
    row("  p99", lambda f: ms(f["disconnect"]["p99"]) if "disconnect" in f else "")
    return table
