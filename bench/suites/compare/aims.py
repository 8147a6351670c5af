"""The aims of issues #7 and #17, each judged on one column, and their table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.tables import Table, ms, plus_ms

from suites.compare.plan import (
    CORTEX,
    CPU_VS_NGINX,
    DISCONNECT_P99,
    LEAN_BACK_TO_BACK_P99,
    LEAN_CPU_PACED,
    LEAN_CPU_PACED_TRANSLATED,
    LEAN_CPU_PER_REQUEST,
    LEAN_DISCONNECT_P99,
    LEAN_TTFC_P50_C1,
    RELAYS,
    THROUGHPUT_SHARE,
    TRANSLATED,
    TTFC_P50_C1,
    TTFC_P99_C1,
    TTFC_P99_CN,
)


@dataclass(frozen=True)
class Aim:
    label: str
    aim: str
    value: Callable[[dict[str, Any]], float]
    show: Callable[[float], str]
    met: Callable[[float], bool] | None  # None: stated, not judged
    judged: str = CORTEX  # the column the verdict is on


def times(x: float) -> str:
    return f"x{x:.2f}"


def share(x: float) -> str:
    return f"{x:.0%}"


def aims() -> list[Aim]:
    return [
        Aim("added TTFC p50, c=1", "≤ 0.5 ms", lambda f: f["added_c1_p50"], plus_ms,
            lambda x: x <= TTFC_P50_C1),
        Aim("added TTFC p99, c=1", "≤ 2 ms", lambda f: f["added_c1_p99"], plus_ms,
            lambda x: x <= TTFC_P99_C1),
        Aim("  the same, median of the rounds", "≤ 2 ms", lambda f: f["added_c1_p99_rounds"],
            plus_ms, lambda x: x <= TTFC_P99_C1),
        Aim("added TTFC p99, c=64 paced", "≤ 5 ms", lambda f: f["added_cn_paced_p99"],
            plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("  the same, median of the rounds", "≤ 5 ms",
            lambda f: f["added_cn_paced_p99_rounds"], plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("added TTFC p99, c=64 back to back", "≤ 5 ms", lambda f: f["added_cn_p99"],
            plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("  the same, median of the rounds", "≤ 5 ms", lambda f: f["added_cn_p99_rounds"],
            plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("CPU / 1000 chunks vs nginx, paced", "≤ x2", lambda f: f["cpu_paced_vs_nginx"],
            times, lambda x: x <= CPU_VS_NGINX),
        Aim("CPU / 1000 chunks vs nginx, no delay", "≤ x2", lambda f: f["cpu_fast_vs_nginx"],
            times, lambda x: x <= CPU_VS_NGINX),
        Aim("throughput, 64 fast streams, of direct", "≥ 50%", lambda f: f["throughput_share"],
            share, lambda x: x >= THROUGHPUT_SHARE),
        Aim("hang-up → upstream closed p99, loaded", "≤ 50 ms", lambda f: f["disconnect"]["p99"],
            ms, lambda x: x <= DISCONNECT_P99),
    ]  # fmt: skip


def lean_aims() -> list[Aim]:
    return [
        Aim("added TTFC p50, c=1", "≤ 0.3 ms", lambda f: f["added_c1_p50"], plus_ms,
            lambda x: x <= LEAN_TTFC_P50_C1),
        Aim("CPU / 1000 paced chunks vs nginx", "≤ x1.5", lambda f: f["cpu_paced_vs_nginx"],
            times, lambda x: x <= LEAN_CPU_PACED),
        Aim("  the same, translated", "≤ x2", lambda f: f["cpu_paced_vs_nginx"], times,
            lambda x: x <= LEAN_CPU_PACED_TRANSLATED, judged=TRANSLATED),
        Aim("CPU per short request", "≤ 0.3 ms", lambda f: f["cpu_per_request"], ms,
            lambda x: x <= LEAN_CPU_PER_REQUEST),
        Aim("  the same, at c=1 alone", "≤ 0.3 ms", lambda f: f["cpu_per_request_c1"], ms,
            lambda x: x <= LEAN_CPU_PER_REQUEST),
        Aim("added TTFC p99, c=64 back to back", "≤ 20 ms", lambda f: f["added_cn_p99"],
            plus_ms, lambda x: x <= LEAN_BACK_TO_BACK_P99),
        Aim("hang-up → upstream closed p99, loaded", "≤ 5 ms", lambda f: f["disconnect"]["p99"],
            ms, lambda x: x <= LEAN_DISCONNECT_P99),
    ]  # fmt: skip


def aims_table(figs: dict[str, dict[str, Any]], issue: str = "#7") -> tuple[Table, dict[str, bool]]:
    table = Table([f"target (issue {issue})", "aim", *RELAYS, TRANSLATED, "verdict"])
    verdicts: dict[str, bool] = {}
    for aim in aims() if issue == "#7" else lean_aims():
        cells = []
        for name in (*RELAYS, TRANSLATED):
            try:
                cells.append(aim.show(aim.value(figs[name])))
            except KeyError:
                cells.append("")
        met = aim.met is not None and aim.met(aim.value(figs[aim.judged]))
        verdicts[aim.label] = met
        table.add(f"  {aim.label}", aim.aim, *cells, "met" if met else "MISSED")
    return table, verdicts
