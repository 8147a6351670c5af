"""Tables of figures, their units, and the header every report starts with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """Rows of cells; a row with only a label is a section heading."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        self.rows.append(list(cells))


def print_table(table: Table) -> None:
    columns = len(table.header)
    rows = [table.header] + [r + [""] * (columns - len(r)) for r in table.rows]
    widths = [max(len(cells[i]) for cells in rows if any(cells[1:])) for i in range(columns)]
    rule = "-" * (sum(widths) + 2 * (columns - 1))
    print(rule)
    for i, cells in enumerate(rows):
        if not any(cells[1:]):
            print(cells[0])
            continue
        right = (f"{cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=True))
        print(f"{cells[0]:<{widths[0]}}  " + "  ".join(right))
        if i == 0:
            print(rule)
    print(rule)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def plus_ms(seconds: float) -> str:
    return f"{seconds * 1e3:+.3f} ms"


def ratio(value: float, base: float) -> str:
    return f"x{value / base:.2f}" if base > 0 else "-"


def print_machine(m: dict[str, Any]) -> None:
    """Two header lines: the CPUs, and Python on its platform with the load average."""
    print(f"machine: {m['nproc']} CPUs usable ({m['cpu_count']} online), {m['cpu_model']}")
    print(f"python {m['python']}, {m['platform']}, load average {m['loadavg'][0]:.2f}")


def print_header(title: str, data: dict[str, Any], pinning: str | None = None) -> None:
    """What a run measures and in which mode, which Córtex, the machine and the pinning."""
    m = data["machine"]
    print(f"{title} ({data['mode']}), Córtex from {m['cortex_source']}")
    print_machine(m)
    print(f"pinning: {pinning or data['pinning']}")
    print("running...", flush=True)
