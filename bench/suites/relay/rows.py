"""The main table's rows for scenarios (a) to (d): direct, via Córtex, added, target."""

from __future__ import annotations

from harness.results import Report
from harness.tables import ms, plus_ms

from suites.relay.plan import TARGET_ADDED_TTFC, TARGET_DISCONNECT, Plan
from suites.relay.scenarios import Stats

MAIN_HEADER = ["scenario", "direct", "via Córtex", "added / ratio", "target"]


def added(direct: float, via: float) -> str:
    return plus_ms(via - direct)


def verdict(value: float, limit: float) -> str:
    return f"< {limit * 1e3:g} ms {'PASS' if value < limit else 'FAIL'}"


def busy(process: dict[str, float], wall: float) -> str:
    return f"{process['cpu_s'] / wall:.0%} / {process['wait_s'] / wall:.0%}"


def latency_rows(report: Report, title: str, stats: Stats, aim: bool) -> None:
    report.add(title)
    direct, via = stats["direct"], stats["via"]
    for q in ("p50", "p99"):
        d, v = direct["ttfc"][q], via["ttfc"][q]
        target = verdict(v - d, TARGET_ADDED_TTFC) if aim and q == "p50" else ""
        report.add(f"  TTFC {q}", ms(d), ms(v), added(d, v), target)
    d, v = direct["total"]["p50"], via["total"]["p50"]
    report.add("  whole answer p50", ms(d), ms(v), added(d, v))
    d, v = direct["requests_per_s"], via["requests_per_s"]
    report.add("  requests/s", f"{d:,.0f}", f"{v:,.0f}", f"x{v / d:.2f}")
    cortex = via["processes"]["cortex"]
    report.add("  Córtex CPU per request", "", ms(cortex["cpu_s"] / via["ttfc"]["n"]))
    report.add("  Córtex busy / waiting for a CPU", "", busy(cortex, via["wall_s"]))


def throughput_rows(report: Report, title: str, stats: Stats) -> None:
    report.add(title)
    direct, via = stats["direct"], stats["via"]
    d, v = (s["lines"] / s["wall_s"] for s in (direct, via))
    report.add("  lines/s", f"{d:,.0f}", f"{v:,.0f}", f"x{v / d:.2f}")
    per_k = via["processes"]["cortex"]["cpu_s"] / via["lines"] * 1000
    report.add("  Córtex CPU per 1000 lines", "", ms(per_k))
    d, v = (f"{s['lines'] / s['chunks']:.1f}" for s in (direct, via))
    report.add("  lines per HTTP chunk received", d, v)
    for name in ("cortex", "upstream", "load generator"):
        cells = [busy(s["processes"][name], s["wall_s"]) for s in (direct, via)]
        report.add(f"  {name} busy / waiting for a CPU", *cells)


def load_side_note(report: Report, stats: Stats) -> None:
    direct = stats["direct"]
    load = direct["processes"]
    load_busy = (load["upstream"]["cpu_s"] + load["load generator"]["cpu_s"]) / direct["wall_s"]
    if load_busy > 0.9:
        report.notes.append(
            f"(c) direct: the fake upstream and the load generator kept their shared CPU "
            f"{min(load_busy, 1):.0%} busy, so the direct figure is bounded by the load side "
            "(one line per chunk costs the load generator more than Córtex's batched chunks "
            "do), not by the network; read (c) by Córtex's CPU and busy share instead."
        )


def disconnect_rows(report: Report, stats: Stats, plan: Plan) -> None:
    report.add(
        f"(d) hang up after {plan.disconnect_after_lines} lines (a token every "
        f"{plan.disconnect_delay_ms:g} ms) until the upstream sees its connection close"
    )
    for q in ("p50", "p99"):
        d, v = stats["direct"][q], stats["via"][q]
        n = stats["via"]["n"]
        report.add(f"  {q} of {n} trials", ms(d), ms(v), added(d, v), verdict(v, TARGET_DISCONNECT))
    if stats["via"]["missed"]:
        report.add("  upstream never saw the hang-up", "", f"{stats['via']['missed']} trials")


def scenario_rows(report: Report, plan: Plan, c1: Stats, cn: Stats, c: Stats, paced: Stats) -> None:
    """The rows of (a) to (c'), with the note on (c)'s load side."""
    tokens = plan.short_tokens
    title = f"(a) concurrency 1, {plan.sequential} requests x {tokens} tokens"
    latency_rows(report, title, c1, True)
    n, requests = plan.concurrency, plan.concurrent
    latency_rows(report, f"(b) concurrency {n}, {requests} requests x {tokens} tokens", cn, False)
    streams = plan.cpu_streams
    throughput_rows(report, f"(c) {streams} streams x {plan.cpu_tokens} tokens, no delay", c)
    load_side_note(report, c)
    throughput_rows(
        report,
        f"(c') {streams} streams x {plan.paced_tokens} tokens, "
        f"a token every {plan.paced_delay_ms:g} ms per stream",
        paced,
    )
