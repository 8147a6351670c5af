"""(e): the four client → upstream dialect paths through Córtex, in interleaved rounds."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from harness.loadgen import DIALECTS, Dialect, Result, chat_request
from harness.loads import long_streams, warmed_load
from harness.machine import HOST
from harness.rounds import Run, interleaved, rounds_of
from harness.stats import summary

from suites.relay.fit import cost_fit
from suites.relay.plan import Plan

PAIRS: tuple[tuple[Dialect, Dialect], ...] = (
    ("ollama", "ollama"),
    ("openai", "openai"),
    ("ollama", "openai"),
    ("openai", "ollama"),
)
LOADS = ("concurrency_1", "throughput", "paced")


@dataclass(frozen=True)
class Route:
    """A client dialect relayed by Córtex to an upstream dialect."""

    client: Dialect
    upstream: Dialect
    port: int  # the Córtex in front of an upstream of this dialect
    pid: int

    @property
    def name(self) -> str:
        return f"{self.client}→{self.upstream}"

    @property
    def translated(self) -> bool:
        return self.client != self.upstream


class Paths:
    """Every run of (e): each client dialect straight at the fake upstream (TTFC samples
    pooled), and per path the runs through Córtex (messages, HTTP chunks and requests
    the client received, Córtex's CPU) for the summaries and the cost fit."""

    def __init__(self, paths: list[Route], upstream_port: int, upstream_pid: int, plan: Plan):
        self.paths, self.plan = paths, plan
        self.upstream_port = upstream_port
        self.base = {"upstream": upstream_pid, "load generator": os.getpid()}
        self.direct: dict[str, list[Result]] = {d: [] for d in DIALECTS}
        self.c1: dict[str, list[Result]] = {p.name: [] for p in paths}
        self.runs = {p.name: {load: list[Run]() for load in LOADS} for p in paths}

    async def sequential(self, target: Route | Dialect) -> None:
        plan = self.plan
        if isinstance(target, Route):
            port, dialect, what = target.port, target.client, target.name
            pids = {"cortex": target.pid, **self.base}
        else:
            port, dialect, what, pids = self.upstream_port, target, f"{target} direct", self.base
        request = chat_request(HOST, port, plan.short_tokens, dialect=dialect)
        load = await warmed_load(
            port, request, plan.path_warmup, plan.path_sequential, 1, pids, what
        )
        if not isinstance(target, Route):
            self.direct[target] += load.results
            return
        self.c1[target.name] += load.results
        run = Run.of(load.results, load.wall_s, [load.used["cortex"]])
        self.runs[target.name]["concurrency_1"].append(run)

    async def streams(self, path: Route, key: str, tokens: int, delay_ms: float) -> None:
        pids = {"cortex": path.pid, **self.base}
        n = self.plan.cpu_streams
        load = await long_streams(path.port, n, tokens, delay_ms, pids, path.name, path.client)
        self.runs[path.name][key].append(Run.of(load.results, load.wall_s, [load.used["cortex"]]))

    async def measure(self) -> None:
        """Interleaved rounds (reversed every other round) so drift hits them all alike."""
        plan = self.plan
        for round_ in range(plan.path_rounds):
            for target in interleaved([*DIALECTS, *self.paths], round_):
                await self.sequential(target)
            for path in interleaved(self.paths, round_):
                await self.streams(path, "throughput", plan.cpu_tokens, 0)
            for path in interleaved(self.paths, round_):
                await self.streams(path, "paced", plan.paced_tokens, plan.paced_delay_ms)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rounds": self.plan.path_rounds,
            "direct": {d: latency_of(self.direct[d]) for d in DIALECTS},
            "paths": {},
        }
        for p in self.paths:
            mine = self.runs[p.name]
            c1_cpu = sum(r.cpu_s for r in mine["concurrency_1"])
            everything = [r for kind in mine.values() for r in kind]
            out["paths"][p.name] = {
                "client": p.client,
                "upstream": p.upstream,
                "translated": p.translated,
                "baseline": f"{p.upstream} direct",
                "concurrency_1": {
                    **latency_of(self.c1[p.name]),
                    "cortex_cpu_ms_per_request": c1_cpu / len(self.c1[p.name]) * 1e3,
                    "rounds": [asdict(r) for r in mine["concurrency_1"]],
                },
                "throughput": rounds_of(mine["throughput"]),
                "paced": rounds_of(mine["paced"]),
                "cost_fit": cost_fit(everything),
            }
        return out


def latency_of(results: list[Result]) -> dict[str, Any]:
    return {
        "ttfc": summary([r.ttfc for r in results]),
        "total": summary([r.total for r in results]),
    }
