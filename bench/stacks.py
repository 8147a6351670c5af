"""Which ASGI server and HTTP client: one minimal streaming relay on each stack, and Córtex.

    .venv/bin/python bench/stacks.py [--quick]

Starts the fake upstream (bench/fake_upstream.py), the minimal relay of
bench/stacks_apps.py on each server and client stack, and ``cortex serve``, as
subprocesses: the relays and Córtex pinned to one CPU, the upstream and the load
generator (this process) to another. In interleaved rounds (order reversed every
other round) it measures, per stack: time to first chunk at concurrency 1 added
over the upstream's own, the server's CPU per 1000 chunks relayed for 64 streams
paced at a token every 5 ms and for 64 unpaced streams, and the chunks per second
of the unpaced streams. Prints a table with ratios against uvicorn+aiohttp
(Córtex's own stack) and writes JSON to bench/results/.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.cli import parser, quick_or_full, run_benchmark
from harness.cpu import family
from harness.loadgen import ChatRequest, Result, chat_request
from harness.loads import long_streams, measured_load, warm_up
from harness.machine import HERE, HOST
from harness.processes import Gateway, Processes, free_port, processes, start_gateway
from harness.results import Report, begin_run, write_results
from harness.rounds import RoundNoise, Run, interleaved, rounds_of
from harness.servers import start_cortex, start_upstream
from harness.stats import summary
from harness.tables import Table, ms, ratio
from stacks_apps import STACKS

CORTEX = "cortex"
BASELINE = "uvicorn-aiohttp"
LABELS = {
    "uvicorn-aiohttp": "uvicorn+aiohttp",
    "uvicorn-httpx": "uvicorn+httpx",
    "granian-aiohttp": "granian+aiohttp",
    "granian-httpx": "granian+httpx",
    "aiohttp-web": "aiohttp.web",
    CORTEX: "Córtex",
}
LOADS = ("concurrency_1", "paced", "unpaced")


@dataclass(frozen=True)
class Plan:
    rounds: int = 5
    sequential: int = 300  # per round and stack, at concurrency 1
    warmup: int = 20
    short_tokens: int = 10
    streams: int = 64
    tokens: int = 2000  # per unpaced stream
    paced_tokens: int = 400
    paced_delay_ms: float = 5


QUICK = Plan(rounds=2, sequential=100, tokens=1000, paced_tokens=200)


@dataclass
class Server:
    """A relay (or Córtex) subprocess; granian's worker is its child."""

    name: str
    process: Gateway

    @property
    def port(self) -> int:
        return self.process.port

    def pids(self) -> dict[str, int]:
        return {f"server {i}": pid for i, pid in enumerate(family(self.process.proc.pid))}


async def start_stack(procs: Processes, stack: str, upstream_port: int) -> Server:
    if stack == CORTEX:
        return Server(stack, await start_cortex(procs, upstream_port))
    port = free_port()
    argv = [sys.executable, str(HERE / "stacks_apps.py"), stack, "--port", str(port)]
    argv += ["--upstream", f"http://{HOST}:{upstream_port}"]
    return Server(stack, await start_gateway(procs, argv, port))


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class Bench:
    plan: Plan
    upstream_port: int
    upstream_pid: int
    servers: list[Server]
    direct: dict[str, list[Result]] = field(default_factory=lambda: {"c1": [], "unpaced": []})
    direct_rates: list[float] = field(default_factory=list)
    c1: dict[str, list[Result]] = field(default_factory=dict)
    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)
    noise: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.c1 = {s.name: [] for s in self.servers}
        self.runs = {s.name: {load: [] for load in LOADS} for s in self.servers}

    def at(self, server: Server | None) -> tuple[int, dict[str, int], str]:
        """Where a load goes (a relay, or straight at the upstream), the processes whose
        CPU it counts, and its name."""
        pids = {"upstream": self.upstream_pid, "load generator": os.getpid()}
        if server is None:
            return self.upstream_port, pids, "direct"
        return server.port, pids | server.pids(), server.name

    async def load(
        self,
        server: Server | None,
        request: ChatRequest,
        requests: int,
        concurrency: int,
        stagger: float = 0,
    ) -> tuple[list[Result], Run | None, float]:
        """One load at a relay (or straight at the upstream); the results, the server's
        CPU as a Run, and the wall time."""
        port, pids, what = self.at(server)
        load = await measured_load(port, request, requests, concurrency, pids, what, stagger)
        if server is None:
            return load.results, None, load.wall_s
        return load.results, Run.of(load.results, load.wall_s, load.of("server")), load.wall_s

    async def sequential(self, server: Server | None) -> None:
        port, _, what = self.at(server)
        request = chat_request(HOST, port, self.plan.short_tokens)
        await warm_up(port, request, self.plan.warmup, 1, what)
        results, run, _ = await self.load(server, request, self.plan.sequential, 1)
        if server is None:
            self.direct["c1"] += results
            return
        assert run is not None
        self.c1[server.name] += results
        self.runs[server.name]["concurrency_1"].append(run)

    async def streams(self, server: Server | None, tokens: int, delay_ms: float) -> None:
        """n streams at once. Paced ones start spread over a stream's length, two per
        connection, so that they do not run in lockstep (n tokens arriving together)."""
        (port, pids, what), n = self.at(server), self.plan.streams
        requests, stagger = (2 * n, tokens * delay_ms / 1e3 / n) if delay_ms else (n, 0)
        load = await long_streams(
            port, n, tokens, delay_ms, pids, what, "ollama", requests, stagger
        )
        if server is None:
            self.direct_rates.append(sum(r.messages for r in load.results) / load.wall_s)
            return
        run = Run.of(load.results, load.wall_s, load.of("server"))
        self.runs[server.name]["paced" if delay_ms else "unpaced"].append(run)

    async def round(self, round_: int) -> None:
        plan = self.plan
        servers = interleaved(self.servers, round_)
        with_direct: list[Server | None] = [None, *self.servers]
        for target in interleaved(with_direct, round_):
            await self.sequential(target)
        for server in servers:
            await self.streams(server, plan.paced_tokens, plan.paced_delay_ms)
        for target in interleaved(with_direct, round_):
            await self.streams(target, plan.tokens, 0)

    async def measure(self) -> None:
        noise = RoundNoise(self.plan.rounds)
        for round_ in range(self.plan.rounds):
            noise.start()
            await self.round(round_)
            noise.end(say=False)
        self.noise = noise.per_round


# ---- summaries and the table --------------------------------------------------------------


def summarize(bench: Bench) -> dict[str, Any]:
    direct = summary([r.ttfc for r in bench.direct["c1"]])
    out: dict[str, Any] = {
        "direct": {"ttfc": direct, "unpaced_messages_per_s": statistics.median(bench.direct_rates)},
        "stacks": {},
        "noise": bench.noise,
    }
    for name, runs in bench.runs.items():
        c1 = runs["concurrency_1"]
        ttfc = summary([r.ttfc for r in bench.c1[name]])
        out["stacks"][name] = {
            "ttfc": ttfc,
            "ttfc_added": {q: ttfc[q] - direct[q] for q in ("p50", "p99")},
            "cpu_ms_per_request": sum(r.cpu_s for r in c1) / sum(r.requests for r in c1) * 1e3,
            "concurrency_1": [asdict(r) for r in c1],
            "paced": rounds_of(runs["paced"]),
            "unpaced": rounds_of(runs["unpaced"]),
        }
    return out


Figure = Callable[[dict[str, Any]], float]


def stacks_table(stats: dict[str, Any], plan: Plan) -> Table:
    by = stats["stacks"]
    names = list(by)
    table = Table([f"{plan.rounds} interleaved round(s)"] + [LABELS[n] for n in names])

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        table.add(label, *(cell(by[n]) for n in names))

    def figure(label: str, value: Figure, show: Callable[[float], str]) -> None:
        row(label, lambda s: show(value(s)))
        row(f"    vs {LABELS[BASELINE]}", lambda s: ratio(value(s), value(by[BASELINE])))

    def spread(load: str) -> None:
        if plan.rounds > 1:
            row(
                "    min - max of the rounds",
                lambda s: (
                    f"{s[load]['cpu_ms_per_1000_min']:.0f} - {s[load]['cpu_ms_per_1000_max']:.0f}"
                ),
            )

    direct = stats["direct"]["ttfc"]
    table.add(
        f"concurrency 1, {plan.sequential * plan.rounds} requests x {plan.short_tokens} tokens "
        f"(direct TTFC p50 {ms(direct['p50'])}, p99 {ms(direct['p99'])})"
    )
    for q in ("p50", "p99"):
        figure(
            f"  TTFC {q} added", lambda s, q=q: s["ttfc_added"][q], lambda v: f"{v * 1e3:+.3f} ms"
        )
    figure("  server CPU per request", lambda s: s["cpu_ms_per_request"], lambda v: f"{v:.3f} ms")
    streams = plan.streams
    table.add(
        f"{streams} streams x {plan.paced_tokens} tokens, a token every "
        f"{plan.paced_delay_ms:g} ms ({2 * streams} requests, starts spread)"
    )
    per_k = "  server CPU ms per 1000 chunks relayed"
    figure(per_k, lambda s: s["paced"]["cpu_ms_per_1000"], lambda v: f"{v:.1f}")
    spread("paced")
    row("  upstream chunks per chunk sent", lambda s: f"{s['paced']['messages_per_chunk']:.2f}")
    rate = stats["direct"]["unpaced_messages_per_s"]
    table.add(f"{streams} streams x {plan.tokens} tokens, no delay (direct {rate:,.0f} chunks/s)")
    figure(per_k, lambda s: s["unpaced"]["cpu_ms_per_1000"], lambda v: f"{v:.1f}")
    spread("unpaced")
    row("  upstream chunks per chunk sent", lambda s: f"{s['unpaced']['messages_per_chunk']:.1f}")
    figure("  chunks/s", lambda s: s["unpaced"]["messages_per_s"], lambda v: f"{v:,.0f}")
    row(
        "  server busy / waiting for a CPU",
        lambda s: f"{s['unpaced']['cortex_busy']:.0%} / {s['unpaced']['cortex_waiting']:.0%}",
    )
    return table


# ---- main ---------------------------------------------------------------------------------


def print_footer(report: Report, path: Path) -> None:
    print(
        "TTFC added: relay pXX - direct pXX over pooled samples. A chunk relayed is one upstream "
        "HTTP chunk (one NDJSON line);\nCPU figures are the server process's (and its "
        "children's) utime + stime, median of the rounds."
    )
    report.print_end(path)


def noise_notes(report: Report, noise: list[dict[str, float]]) -> None:
    others = max(n["others"] for n in noise)
    steal = max(n["steal"] for n in noise)
    report.notes.append(
        f"in the busiest round other processes used {others:.0%} of the machine's CPU "
        f"and the hypervisor stole {steal:.0%}"
    )


async def main(plan: Plan, mode: str) -> int:
    report, pinning = begin_run("Server and client stacks", mode, plan, relays="servers")
    async with processes(pinning) as procs:
        upstream, upstream_port = await start_upstream(procs)
        servers = [await start_stack(procs, s, upstream_port) for s in (*STACKS, CORTEX)]
        bench = Bench(plan, upstream_port, upstream.pid, servers)
        await bench.measure()
        log = [line for s in servers for line in s.process.log_lines()]
    report.data["stacks"] = summarize(bench)
    report.tables = [stacks_table(report.data["stacks"], plan)]
    report.finish(log)
    noise_notes(report, bench.noise)
    report.print_tables()
    print_footer(report, write_results("stacks", report.data))
    return 0


def cli(argv: list[str] | None = None) -> None:
    args = parser(__doc__, "two rounds of smaller loads, ~1 min").parse_args(argv)
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    run_benchmark(main(plan, mode), "the upstream and the servers")


if __name__ == "__main__":
    cli()
