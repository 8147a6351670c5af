"""The report: the table of every case, the issue's targets, failures and Córtex's log."""

from __future__ import annotations

from typing import Any

from harness.stats import percentile

from suites.routing.case import Case
from suites.routing.plan import MODELS, SHARED, TWICE, TWICE_REDIS


def ms(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(cases: list[Case]) -> list[str]:
    head = "| workload | rule | requests | failed | TTFT p50 ms | TTFT p99 ms | TTFT mean ms "
    head += "| loads | evictions | prompt cached | same backend | added p99 ms |"
    lines = [head, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for case in cases:
        f = case.figures()
        lines.append(
            f"| {case.workload} | {case.rule} | {f['requests']} | {f['failed']} "
            f"| {ms(f['ttft_p50_ms'])} | {ms(f['ttft_p99_ms'])} | {ms(f['ttft_mean_ms'])} "
            f"| {f['loads']} "
            f"| {f['evictions']} | {f['cached_share']:.0%} | {f['same_backend_share']:.0%} "
            f"| {ms(f['added_p99_ms'], 1)} |"
        )
    return lines


def find(cases: list[Case], workload: str, rule: str) -> Case | None:
    return next((c for c in cases if c.workload == workload and c.rule == rule), None)


def targets(cases: list[Case]) -> list[dict[str, Any]]:
    """The issue's targets, each with its figure and whether this run met it."""
    out = []
    state, least = find(cases, SHARED, "state"), find(cases, SHARED, "least-outstanding")
    if state and least and state.ttfts() and least.ttfts():
        change = percentile(state.ttfts(), 50) / percentile(least.ttfts(), 50) - 1
        name = f"{SHARED} TTFT p50, state vs least-outstanding"
        out.append(target(name, change, change <= -0.5, f"{change:+.0%} (aim: -50% or lower)"))
    state, least = find(cases, MODELS, "state"), find(cases, MODELS, "least-outstanding")
    if state and least and least.total("loads"):
        fewer = 1 - state.total("loads") / least.total("loads")
        name = f"{MODELS} loads, state vs least-outstanding"
        out.append(target(name, fewer, fewer >= 0.8, f"{fewer:.0%} fewer (aim: 80% fewer)"))
    for workload, rule in ((TWICE, "affinity"), (TWICE, "state"), (TWICE_REDIS, "state")):
        one, two = find(cases, SHARED, rule), find(cases, workload, rule)
        if one and two:
            points = (two.same_backend_share() - one.same_backend_share()) * 100
            cached = (two.cached_share() - one.cached_share()) * 100
            shown = f"{points:+.0f} points (prompt cached {cached:+.0f} points; aim: -10 or more)"
            sharing = " sharing Redis" if workload == TWICE_REDIS else ""
            name = f"affinity hit rate, 2 instances{sharing} vs 1, {rule}"
            out.append(target(name, points, points >= -10, shown))
    return out


def target(name: str, value: float, met: bool, shown: str) -> dict[str, Any]:
    return {"target": name, "value": value, "met": met, "shown": shown}


def print_report(cases: list[Case], goals: list[dict[str, Any]], elapsed: float) -> None:
    print("\n".join(table(cases)))
    print()
    for goal in goals:
        print(f"{'met   ' if goal['met'] else 'MISSED'}  {goal['target']}: {goal['shown']}")
    for case in cases:
        where = f"{case.workload}/{case.rule}"
        for record in case.failed()[:3]:
            print(f"failed: {where} chat {record.chat} turn {record.turn}: {record.error}")
        if case.cortex_log:
            lines = len(case.cortex_log)
            print(f"Córtex logged {lines} line(s) in {where}: {case.cortex_log[0][:300]}")
    print(f"took {elapsed:.0f} s")
