"""(e)'s table: per dialect path, TTFC added at concurrency 1, Córtex's CPU per 1000 messages
measured and fitted, and the ratios between paths."""

from __future__ import annotations

from typing import Any

from harness.tables import Table, ms, ratio

from suites.relay.paths import Route
from suites.relay.plan import MIN_FIT_RUNS, TARGET_ADDED_TTFC, Plan
from suites.relay.rows import added


def paths_table(stats: dict[str, Any], paths: list[Route], plan: Plan) -> Table:
    rounds = stats["rounds"]
    table = Table(
        [f"(e) client→upstream dialect, {rounds} interleaved round(s)"] + [p.name for p in paths]
    )
    by = stats["paths"]
    direct = stats["direct"]
    first = paths[0].name
    same = {p.client: p.name for p in paths if not p.translated}

    def row(label: str, cell: Any) -> None:
        table.add(label, *(cell(p, by[p.name]) for p in paths))

    def ratios(value: Any) -> None:
        """The vs-ollama→ollama and translated/same-dialect rows for a figure."""
        row(f"    vs {first}", lambda p, s: ratio(value(s), value(by[first])))
        row(
            "    translated / same-dialect, same client",
            lambda p, s: ratio(value(s), value(by[same[p.client]])) if p.translated else "",
        )

    row("  relayed as", lambda p, _: "translated" if p.translated else "bytes")
    row("  direct baseline: client →", lambda p, _: f"{p.upstream} fake")
    n = plan.path_sequential * rounds
    table.add(f"concurrency 1, {n} requests x {plan.short_tokens} tokens per path")
    for q in ("p50", "p99"):
        row(f"  TTFC {q} direct", lambda p, _, q=q: ms(direct[p.upstream]["ttfc"][q]))
        row(f"  TTFC {q} via Córtex", lambda p, s, q=q: ms(s["concurrency_1"]["ttfc"][q]))
        row(
            f"  TTFC {q} added",
            lambda p, s, q=q: added(direct[p.upstream]["ttfc"][q], s["concurrency_1"]["ttfc"][q]),
        )
    row(
        f"  added p50 target < {TARGET_ADDED_TTFC * 1e3:g} ms",
        lambda p, s: (
            "PASS"
            if s["concurrency_1"]["ttfc"]["p50"] - direct[p.upstream]["ttfc"]["p50"]
            < TARGET_ADDED_TTFC
            else "FAIL"
        ),
    )
    row(
        "  whole answer p50 added",
        lambda p, s: added(direct[p.upstream]["total"]["p50"], s["concurrency_1"]["total"]["p50"]),
    )
    row(
        "  Córtex CPU per request",
        lambda p, s: f"{s['concurrency_1']['cortex_cpu_ms_per_request']:.3f} ms",
    )

    def spread(key: str) -> None:
        if rounds > 1:
            row(
                "    min - max of the rounds, ms",
                lambda p, s: (
                    f"{s[key]['cpu_ms_per_1000_min']:.1f} - {s[key]['cpu_ms_per_1000_max']:.1f}"
                ),
            )

    table.add("Córtex CPU per 1000 messages, measured (median of the rounds)")
    row(
        f"  {plan.cpu_streams} x {plan.cpu_tokens} tokens, no delay",
        lambda p, s: ms(s["throughput"]["cpu_ms_per_1000"] / 1e3),
    )
    spread("throughput")
    row(
        "    messages per HTTP chunk sent",
        lambda p, s: f"{s['throughput']['messages_per_chunk']:.1f}",
    )
    row("    messages/s via Córtex", lambda p, s: f"{s['throughput']['messages_per_s']:,.0f}")
    row(
        "    Córtex busy / waiting for a CPU",
        lambda p, s: (
            f"{s['throughput']['cortex_busy']:.0%} / {s['throughput']['cortex_waiting']:.0%}"
        ),
    )
    row(
        f"  {plan.cpu_streams} x {plan.paced_tokens} tokens, {plan.paced_delay_ms:g} ms apart",
        lambda p, s: ms(s["paced"]["cpu_ms_per_1000"] / 1e3),
    )
    spread("paced")
    row("    messages per HTTP chunk sent", lambda p, s: f"{s['paced']['messages_per_chunk']:.1f}")
    ratios(lambda s: s["paced"]["cpu_ms_per_1000"])

    if not all(s["cost_fit"] for s in by.values()):
        table.add(f"(no cost fit: it needs {MIN_FIT_RUNS // 3} or more rounds that pin it down)")
    else:
        table.add(
            "Córtex CPU fitted over all runs of a path: a x messages + b x chunks + c x requests"
        )
        row(
            "  a: per 1000 messages (many tokens)",
            lambda p, s: ms(s["cost_fit"]["cpu_ms_per_1000_messages"] / 1e3),
        )
        ratios(lambda s: s["cost_fit"]["cpu_ms_per_1000_messages"])
        row(
            "  b: per 1000 HTTP chunks sent",
            lambda p, s: ms(s["cost_fit"]["cpu_ms_per_1000_chunks"] / 1e3),
        )
        row("  c: per request", lambda p, s: ms(s["cost_fit"]["cpu_ms_per_request"] / 1e3))
        row(
            "  largest error of the fit on one run",
            lambda p, s: f"{s['cost_fit']['max_relative_error']:.0%}",
        )
    return table
