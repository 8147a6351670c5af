"""The tables of bench/concurrency.py: the sweep per path beside the published figures, the
aim per concurrency, then long prompts, neighbours, tool calls, bad keys, workers, profile."""

from __future__ import annotations

import statistics
from typing import Any

from harness.stats import percentile
from harness.tables import Table

from suites.concurrency.added import added, paired
from suites.concurrency.plan import AIM_SCALING, PUBLISHED, Plan
from suites.concurrency.sweep import Samples
from suites.concurrency.targets import GO, Target

BIFROST = "Bifrost (Go)"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:+.2f}"


def sweep_figures(
    samples: Samples, targets: list[Target], directs: dict[str, Target], plan: Plan
) -> dict[str, dict[int, dict[str, Any]]]:
    """Per gateway target and level: added TTFT and gap percentiles (pooled, and median of
    the rounds for p99), the direct run's own, and the CPU figures."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for target in targets:
        base = directs[target.upstream].name
        out[target.name] = {}
        for c in plan.levels:
            g, d = samples[target.name][c], samples[base][c]
            out[target.name][c] = {
                "ttft_p50": paired(d.ttfc, g.ttfc, 50),
                "ttft_p99": paired(d.ttfc, g.ttfc, 99),
                "gap_p50": paired(d.gaps, g.gaps, 50),
                "gap_p99": paired(d.gaps, g.gaps, 99),
                "cortex_busy": statistics.median(g.cortex_busy),
                "cortex_waiting": statistics.median(g.cortex_waiting),
                "cpu_ms_per_request": statistics.median(g.cortex_cpu_per_request) * 1e3,
                "load_busy": statistics.median(g.load_busy),
                "direct_load_busy": statistics.median(d.load_busy),
                "requests_per_s": statistics.median(g.requests_per_s),
            }
    return out


def sweep_tables(figs: dict[str, dict[int, dict[str, Any]]], plan: Plan) -> list[Table]:
    """One table per gateway target: a row per concurrency, ms added over direct."""
    tables = []
    for name, levels in figs.items():
        table = Table(
            [
                f"{name} (ms)",
                "direct TTFT p50/p99",
                "added TTFT p50",
                "p99",
                "p99 mid-round",
                "gap p50/p99 added",
                "CPU/request",
                "Córtex busy/waiting",
                "load side",
            ]
        )
        for c, f in levels.items():
            direct = f"{f['ttft_p50']['direct'] * 1e3:.2f}/{f['ttft_p99']['direct'] * 1e3:.2f}"
            gaps = f"{_ms(f['gap_p50']['pooled'])}/{_ms(f['gap_p99']['pooled'])}"
            table.add(
                f"c = {c}",
                direct,
                _ms(f["ttft_p50"]["pooled"]),
                _ms(f["ttft_p99"]["pooled"]),
                _ms(f["ttft_p99"]["median_of_rounds"]),
                gaps,
                f"{f['cpu_ms_per_request']:.3f}",
                f"{f['cortex_busy']:.0%}/{f['cortex_waiting']:.0%}",
                f"{f['load_busy']:.0%}",
            )
        tables.append(table)
    return tables


def published_table(figs: dict[str, dict[int, dict[str, Any]]], plan: Plan) -> Table:
    """p99 added TTFT per concurrency: the published figures, then each Córtex target."""
    short = {
        name: name.replace(", ", " ").replace(" worker", "w").replace("ws", "w") for name in figs
    }
    table = Table(["p99 added TTFT (ms)", *PUBLISHED, *short.values()])
    for c in plan.levels:
        table.add(
            f"c = {c}",
            *(f"+{PUBLISHED[n][c]:g}" if c in PUBLISHED[n] else "-" for n in PUBLISHED),
            *(_ms(figs[name][c]["ttft_p99"]["pooled"]) for name in figs),
        )
    return table


def aims_table(figs: dict[str, dict[int, dict[str, Any]]]) -> Table:
    """Issue #29's aim on one core: p99 added TTFT at most Bifrost's at each concurrency."""
    table = Table(
        ["aim: p99 added TTFT ≤ Bifrost's, 1 worker", *(f"c = {c}" for c in PUBLISHED[BIFROST])]
    )
    for name, levels in figs.items():
        if "1 worker" not in name:
            continue
        cells = []
        for c, bifrost in PUBLISHED[BIFROST].items():
            ours = levels[c]["ttft_p99"]["pooled"] * 1e3
            cells.append(f"{'met' if ours <= bifrost else 'MISSED'} ({ours:+.1f} vs +{bifrost:g})")
        table.add(name, *cells)
    return table


def references_table(figs: dict[str, dict[int, dict[str, Any]]]) -> Table:
    """p99 added TTFT of each one-worker Córtex beside the relays measured in the same run,
    and how much it is above the Go relay's (the same-machine stand-in for a Go gateway)."""
    refs = [name for name in figs if "worker" not in name]
    ones = [name for name in figs if "1 worker" in name]
    go = next((name for name in refs if name.startswith(GO)), None)
    head = [f"{name} here" for name in refs] + [name.replace(", 1 worker", " 1w") for name in ones]
    table = Table(["p99 added TTFT (ms), this run", *head])
    for c in next(iter(figs.values()), {}):
        cells = [_ms(figs[name][c]["ttft_p99"]["pooled"]) for name in refs]
        for name in ones:
            ours = figs[name][c]["ttft_p99"]["pooled"]
            cell = _ms(ours)
            if go is not None:  # a difference: a ratio to a p99 near zero says nothing
                cell += f" ({_ms(ours - figs[go][c]['ttft_p99']['pooled'])} over Go)"
            cells.append(cell)
        table.add(f"c = {c}", *cells)
    return table


def prompts_table(
    prompts: dict[str, dict[int, list[float]]], targets: list[Target], directs: dict[str, Target]
) -> Table:
    table = Table(["long prompts, c = 1 (ms)", "direct p50", "added p50", "added p99"])
    for target in targets:
        table.add(target.name)
        base = prompts[directs[target.upstream].name]
        for size, values in prompts[target.name].items():
            table.add(
                f"  {size:,} tokens ({size * 4 // 1000} kB)",
                f"{percentile(base[size], 50) * 1e3:.2f}",
                _ms(added(base[size], values, 50)),
                _ms(added(base[size], values, 99)),
            )
    return table


def neighbours_table(
    found: dict[str, dict[str, dict[str, list[float]]]],
    targets: list[Target],
    directs: dict[str, Target],
) -> Table:
    table = Table(["fast streams beside a slow one (ms)", "TTFT p99", "added", "gap p99", "added"])
    for target in [*directs.values(), *targets]:
        if target.name not in found:
            continue
        table.add(target.name)
        base = found[directs[target.upstream].name]
        for case, got in found[target.name].items():
            table.add(
                f"  {case}",
                f"{percentile(got['ttfc'], 99) * 1e3:.2f}",
                _ms(added(base[case]["ttfc"], got["ttfc"], 99)) if target.workers else "",
                f"{percentile(got['gaps'], 99) * 1e3:.2f}",
                _ms(added(base[case]["gaps"], got["gaps"], 99)) if target.workers else "",
            )
    return table


def tools_table(found: dict[str, dict[str, Any]], targets: list[Target], plan: Plan) -> Table:
    table = Table(
        [
            f"a tool call in {plan.tool_deltas} pieces (ms)",
            "total p50",
            "p99",
            "CPU / 1000 pieces",
            "whole",
        ]
    )
    for target in targets:
        got = found[target.name]
        table.add(
            target.name,
            f"{percentile(got['total'], 50) * 1e3:.2f}",
            f"{percentile(got['total'], 99) * 1e3:.2f}",
            f"{got['cpu_ms_per_1000_pieces']:.1f}" if target.workers else "",
            {None: "", True: "yes", False: "NO"}[got["whole"]],
        )
    return table


def flood_table(found: dict[str, Any], plan: Plan) -> Table:
    table = Table(["bad keys (ms)", "good TTFT p50", "p99"])
    for case in ("alone", "during"):
        values = found[case]
        label = "good streams alone" if case == "alone" else f"during {plan.flood_rate:g} bad/s"
        table.add(
            label,
            f"{percentile(values, 50) * 1e3:.2f}",
            f"{percentile(values, 99) * 1e3:.2f}",
        )
    table.add(
        "CPU per rejected request",
        f"{found['cpu_us_per_rejection']:.0f} µs",
        f"{found['rejections_per_s']:.0f}/s flat out",
    )
    return table


def scaling_table(found: dict[str, Any]) -> Table:
    table = Table(["workers, back to back", "requests/s", "CPU/request", "Córtex", "load side"])
    for name in ("1 worker", "2 workers"):
        f = found[name]
        table.add(
            name,
            f"{f['requests_per_s']:.0f}",
            f"{f['cpu_ms_per_request']:.3f} ms",
            f"{f['cortex_busy']:.0%}",
            f"{f['load_busy']:.0%}",
        )
    s = found["scaling"]
    spread = ", ".join(f"{x:.0%}" for x in found["2 workers"]["busiest_per_round"])
    table.add("2 workers / 1, wall (load side shares a CPU)", f"x{s['wall']:.2f}")
    table.add("CPU per request, 1 worker / 2", f"x{s['cpu_per_request_ratio']:.2f}")
    table.add("the busier worker's share of the CPU, by round", spread)
    verdict = "met" if s["estimated"] >= AIM_SCALING * 2 else "MISSED"
    table.add(
        f"estimated on 2 free cores (aim x{AIM_SCALING * 2:.1f})", f"x{s['estimated']:.2f}", verdict
    )
    return table


def hotspots_table(found: dict[str, Any]) -> Table:
    table = Table([f"py-spy, {found.get('target', '')}, c = 64", "share"])
    if "error" in found:
        table.add(found["error"], "-")
        return table
    table.add("by part (bench/profile.py's)")
    for part, share in found["parts"][:10]:
        table.add(f"  {part}", f"{share:.0%}")
    table.add("by function, own time")
    for frame, share in found["leaves"]:
        table.add(f"  {frame[:90]}", f"{share:.1%}")
    return table
