"""What the benchmarks share around their measurements: the command line, a run's facts,
the figures of repeated loads, tables, notes, and the JSON written to bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, Self, TypeVar

import orjson
from fake_upstream import run
from harness import HERE, ROOT, CpuClock, machine
from loadgen import Result

RESULTS = HERE / "results"
P = TypeVar("P")


# ---- the command line -----------------------------------------------------------------------


def parser(doc: str | None, quick: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first line, and ``--quick``."""
    out = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    out.add_argument("--quick", action="store_true", help=quick)
    return out


def quick_or_full(quick: bool, full: P, small: P) -> tuple[P, str]:
    """The plan a run follows, and its mode as the header and the JSON name it."""
    return (small, "quick") if quick else (full, "full")


def run_benchmark(main: Coroutine[Any, Any, int], stopped: str) -> NoReturn:
    """Run ``main`` (on uvloop, as Córtex runs) and exit with its code; interrupted, say
    that ``stopped`` were stopped and exit 130."""
    try:
        sys.exit(run(main))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"interrupted; {stopped} were stopped", file=sys.stderr)
        sys.exit(130)


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the running task, so the subprocesses are stopped on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


# ---- a run's figures ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One load through a relay, as the client received it, and the relay's CPU meanwhile."""

    messages: int
    chunks: int  # HTTP chunks: the relay's writes of the answer body
    requests: int
    wall_s: float
    cpu_s: float
    wait_s: float

    @classmethod
    def of(
        cls, results: list[Result], wall: float, relay: list[dict[str, float]], **more: float
    ) -> Self:
        """The run of a load from its results and the relay's processes' CPU (``measured``);
        ``more`` are a subclass's fields."""
        return cls(
            messages=sum(r.messages for r in results),
            chunks=sum(r.chunks for r in results),
            requests=len(results),
            wall_s=wall,
            cpu_s=sum(u["cpu_s"] for u in relay),
            wait_s=sum(u["wait_s"] for u in relay),
            **more,
        )

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.cpu_s / self.messages * 1e6


def rounds_of(runs: list[Run]) -> dict[str, Any]:
    """The same load's runs over the rounds: medians, the CPU's range, and every run."""
    return {
        "cpu_ms_per_1000": statistics.median(r.cpu_ms_per_1000 for r in runs),
        "cpu_ms_per_1000_min": min(r.cpu_ms_per_1000 for r in runs),
        "cpu_ms_per_1000_max": max(r.cpu_ms_per_1000 for r in runs),
        "messages_per_s": statistics.median(r.messages / r.wall_s for r in runs),
        "messages_per_chunk": sum(r.messages for r in runs) / sum(r.chunks for r in runs),
        "cortex_busy": statistics.median(r.cpu_s / r.wall_s for r in runs),
        "cortex_waiting": statistics.median(r.wait_s / r.wall_s for r in runs),
        "rounds": [asdict(r) for r in runs],
    }


# ---- tables and formatting ------------------------------------------------------------------


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


# ---- the report and the results JSON --------------------------------------------------------


@dataclass
class Report:
    """A run's tables, its JSON data (from the start: mode, plan, machine) and the footer's
    notes; and its start, for the run's length and the machine's CPU used meanwhile."""

    tables: list[Table] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    cpu: CpuClock = field(default_factory=CpuClock.now)

    @classmethod
    def begin(cls, mode: str, plan: Any, *tables: Table) -> Report:
        started, cpu = time.monotonic(), CpuClock.now()
        return cls(list(tables), facts(mode, plan), started=started, cpu=cpu)

    def add(self, *cells: str) -> None:
        """A row of the first table."""
        self.tables[0].add(*cells)

    def finish(self, log: list[str]) -> None:
        """Record the run's length, whether anything else used the machine, and Córtex's log."""
        elapsed = time.monotonic() - self.started
        others = CpuClock.now().others_since(self.cpu, elapsed)
        self.data.update(elapsed_s=elapsed, cortex_log=log, machine_cpu_not_ours=others)
        if others["others"] > 0.05 or others["steal"] > 0.02:
            self.notes.append(
                f"other processes used {others['others']:.0%} of this machine's CPU during the "
                f"run and the hypervisor stole {others['steal']:.0%}: expect noisy figures."
            )
        if log:
            self.notes.append(f"Córtex logged {len(log)} line(s) at warning or above: {log[0]}")

    def print_tables(self) -> None:
        for table in self.tables:
            print_table(table)

    def print_notes(self) -> None:
        for note in self.notes:
            print(f"note: {note}")

    def print_end(self, results: Path) -> None:
        """The notes, how long the run took and where its JSON is."""
        self.print_notes()
        print(f"took {self.data['elapsed_s']:.1f} s; results in {results.relative_to(ROOT)}")


def facts(mode: str, plan: Any) -> dict[str, Any]:
    """How a run starts its JSON: its mode, its plan (a dataclass) and the machine."""
    return {"mode": mode, "plan": asdict(plan), "machine": machine()}


def write_results(name: str, payload: Any) -> Path:
    """``payload`` as indented JSON in bench/results/<name>-<timestamp>.json; its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return path
