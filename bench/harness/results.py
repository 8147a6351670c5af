"""A run's report (tables, JSON data, footer notes) and its JSON in bench/results/."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from harness.cli import cancel_on_sigterm
from harness.cpu import CpuClock
from harness.machine import HERE, ROOT, machine
from harness.pinning import Pinning, choose_pinning
from harness.tables import Table, print_header, print_table

RESULTS = HERE / "results"


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


def begin_run(
    title: str, mode: str, plan: Any, *tables: Table, relays: str = "Córtex", shown: str = "{}"
) -> tuple[Report, Pinning]:
    """A run's start: SIGTERM cancels it, its report begins, the pinning is chosen, recorded
    (naming the pinned ``relays``) and printed in the header (as ``shown`` formats it), and
    this process, the load generator, moves to the load side's CPU."""
    cancel_on_sigterm()
    report = Report.begin(mode, plan, *tables)
    pinning = choose_pinning()
    report.data["pinning"] = pinning.describe(relays)
    print_header(title, report.data, shown.format(report.data["pinning"]))
    pinning.pin_load_generator()
    return report, pinning


def facts(mode: str, plan: Any) -> dict[str, Any]:
    """How a run starts its JSON: its mode, its plan (a dataclass) and the machine."""
    return {"mode": mode, "plan": asdict(plan), "machine": machine()}


def write_results(name: str, payload: Any) -> Path:
    """``payload`` as indented JSON in bench/results/<name>-<timestamp>.json; its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path
