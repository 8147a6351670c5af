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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    HERE,
    HOST,
    Cortex,
    CpuClock,
    Pinning,
    Processes,
    choose_pinning,
    cpu_list,
    cpu_seconds,
    family,
    free_port,
    measured,
    processes,
    start_cortex,
    start_gateway,
    start_upstream,
    summary,
)
from loadgen import ChatRequest, Result, chat_request, checked, run_load
from report import (
    Report,
    Run,
    Table,
    cancel_on_sigterm,
    ms,
    parser,
    quick_or_full,
    ratio,
    rounds_of,
    run_benchmark,
    write_results,
)
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
    process: Cortex

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

    def base_pids(self) -> dict[str, int]:
        return {"upstream": self.upstream_pid, "load generator": os.getpid()}

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
        port = server.port if server else self.upstream_port
        pids = {**self.base_pids(), **(server.pids() if server else {})}
        (results, wall), used = await measured(
            pids, run_load(HOST, port, request, requests, concurrency, stagger)
        )
        checked(results, server.name if server else "direct")
        if server is None:
            return results, None, wall
        mine = [u for name, u in used.items() if name.startswith("server")]
        return results, Run.of(results, wall, mine), wall

    async def sequential(self, server: Server | None) -> None:
        port = server.port if server else self.upstream_port
        request = chat_request(HOST, port, self.plan.short_tokens)
        await self.load(server, request, self.plan.warmup, 1)
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
        port, n = server.port if server else self.upstream_port, self.plan.streams
        await self.load(server, chat_request(HOST, port, tokens // 10, delay_ms), n, n)
        requests, stagger = (2 * n, tokens * delay_ms / 1e3 / n) if delay_ms else (n, 0)
        results, run, wall = await self.load(
            server, chat_request(HOST, port, tokens, delay_ms), requests, n, stagger
        )
        if server is None:
            self.direct_rates.append(sum(r.messages for r in results) / wall)
            return
        assert run is not None
        self.runs[server.name]["paced" if delay_ms else "unpaced"].append(run)

    async def round(self, forward: bool) -> None:
        plan = self.plan
        servers = self.servers if forward else self.servers[::-1]
        with_direct: list[Server | None] = [None, *servers]
        for target in with_direct if forward else with_direct[::-1]:
            await self.sequential(target)
        for server in servers:
            await self.streams(server, plan.paced_tokens, plan.paced_delay_ms)
        for target in with_direct if forward else with_direct[::-1]:
            await self.streams(target, plan.tokens, 0)

    def all_pids(self) -> list[int]:
        return [self.upstream_pid, *(pid for s in self.servers for pid in s.pids().values())]

    async def measure(self) -> None:
        for round_ in range(self.plan.rounds):
            started, clock = time.monotonic(), CpuClock.now()
            ours = sum(map(cpu_seconds, self.all_pids()))
            await self.round(forward=round_ % 2 == 0)
            wall = time.monotonic() - started
            ours = sum(map(cpu_seconds, self.all_pids())) - ours
            self.noise.append({"wall_s": wall, **CpuClock.now().others_since(clock, wall, ours)})


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


def print_header(data: dict[str, Any]) -> None:
    m = data["machine"]
    print(f"Server and client stacks ({data['mode']}): Córtex {m['cortex_source']}, {m['python']}")
    print(f"{m['nproc']} of {m['cpu_count']} CPUs, {m['cpu_model']}, load {m['loadavg'][0]:.2f}")
    print(f"{data['pinning']}\nrunning...", flush=True)


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


def pin_load_generator(pinning: Pinning) -> str:
    """Move this process to the load CPU; where everything runs."""
    if pinning.cortex is None or pinning.load is None:
        return pinning.describe()
    pinning.pin_load_generator()
    return (
        f"servers on CPU {cpu_list(pinning.cortex)}; upstream + load generator on "
        f"CPU {cpu_list(pinning.load)} ({pinning.how})"
    )


async def main(plan: Plan, mode: str) -> int:
    cancel_on_sigterm()
    report = Report.begin(mode, plan)
    pinning = choose_pinning()
    report.data["pinning"] = pin_load_generator(pinning)
    print_header(report.data)
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
