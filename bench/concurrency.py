"""What Córtex adds under concurrency, in the method of AIGatewayBench (issue #29).

    .venv/bin/python bench/concurrency.py [--quick]

A deterministic fake upstream (bench/fake_upstream.py), straight and through Córtex;
added = through Córtex − direct, at the same percentile, from interleaved rounds. The
sweep: answers at a model's pace (20 tokens, a token every 5 ms) over 1, 4, 16, 64 and
256 kept-alive connections, with Córtex on one core (one worker, pinned as the harness
pins relays) and with ``--workers 2`` (on both CPUs), for Ollama → Ollama, OpenAI →
OpenAI and OpenAI client → Ollama upstream: p50 and p99 added time to first token and
inter-token gap. Two other relays are swept beside Córtex on the Ollama path, on the same
CPU, as this machine's own references: nginx, a Go reverse proxy (bench/go/relay.go,
built when Go is installed: ``apt-get install golang-go``) and Python's floor, a byte
pipe on uvloop that parses nothing (bench/pipe_relay.py). Then long prompts (1k, 10k,
100k tokens of body), fast streams beside a slow one (head-of-line blocking), a tool
call streamed in many small pieces (forwarded, and reassembled for an Ollama client), a
flood of bad keys, the throughput of one worker and two, and a py-spy profile at
concurrency 64. Prints the tables beside
the published figures, writes JSON to bench/results/ and the plot to
docs/performance-concurrency.png (a quick run puts it beside its JSON). Its parts are in
bench/suites/concurrency/.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import orjson
from harness.cli import parser, quick_or_full, run_benchmark
from harness.cpu import Snapshot
from harness.machine import ROOT
from harness.processes import processes
from harness.results import Report, begin_run, write_results
from harness.servers import start_upstream
from suites.concurrency import report as tables
from suites.concurrency.flood import bad_keys
from suites.concurrency.hotspots import hotspots
from suites.concurrency.neighbours import neighbours
from suites.concurrency.plan import PLOT, QUICK, Plan
from suites.concurrency.plot import plot
from suites.concurrency.prompts import long_prompts
from suites.concurrency.scaling import scaling
from suites.concurrency.sweep import sweep
from suites.concurrency.targets import (
    Target,
    direct,
    gateway_targets,
    reference_targets,
    start_cortexes,
)
from suites.concurrency.tools import tool_calls

T = TypeVar("T")
PLOT_TITLE = "Córtex under concurrency: added over direct (answers of 20 tokens, 5 ms apart)"


async def phase(report: Report, name: str, work: Awaitable[T]) -> T:
    """Await a phase of the run, noting the share of the machine others used meanwhile."""
    start = Snapshot.now()
    value = await work
    noise = Snapshot.now().others_since(start)
    report.data.setdefault("noise_per_phase", {})[name] = noise
    print(f"  {name}: others used {noise['others']:.0%} of the machine", flush=True)
    return value


async def scaling_only(plan: Plan, report: Report, pinning: Any) -> list[str]:
    """Only the workers' part (``--only scaling``): one worker against two."""
    async with processes(pinning) as procs:
        upstream, upstream_port = await start_upstream(procs)
        by_name = {t.name: t for t in gateway_targets(await start_cortexes(procs, upstream_port))}
        one, two = by_name["ollama→ollama, 1 worker"], by_name["ollama→ollama, 2 workers"]
        load_side = [upstream.pid, os.getpid()]
        scaled = await phase(report, "workers", scaling(one, two, plan, load_side))
        report.data["scaling"] = scaled
        logs = [line for t in (one, two) for line in t.log_lines()]
    report.tables.append(tables.scaling_table(scaled))
    return logs


async def measure(plan: Plan, report: Report, pinning: Any) -> list[str]:
    data = report.data
    with tempfile.TemporaryDirectory(prefix="cortex-concurrency-") as tmp:
        async with processes(pinning) as procs:
            upstream, upstream_port = await start_upstream(procs)
            load_side = [upstream.pid, os.getpid()]
            cortexes = await start_cortexes(procs, upstream_port)
            directs = {d: direct(upstream_port, d) for d in ("ollama", "openai")}
            gateways = gateway_targets(cortexes)
            references = await reference_targets(procs, upstream_port, Path(tmp))
            swept = [*directs.values(), *gateways, *references]
            samples, noise = await sweep(swept, plan, load_side)
            data["noise_per_round"] = noise
            figs = tables.sweep_figures(samples, [*gateways, *references], directs, plan)
            data["sweep"] = figs
            data["sweep_samples"] = {
                n: {c: asdict(v) for c, v in s.items()} for n, s in samples.items()
            }
            ones = [t for t in gateways if t.workers == 1]
            by_name = {t.name: t for t in gateways}
            prompts = await phase(
                report, "long prompts", long_prompts([*directs.values(), *ones], plan)
            )
            data["prompts"] = prompts
            slow = [directs["ollama"], *(t for t in ones if t.upstream == "ollama")]
            near = await phase(report, "neighbours", neighbours(slow, plan))
            data["neighbours"] = near
            openai_one = cortexes["openai", 1]
            tool_targets = [
                directs["openai"],
                by_name["openai→openai, 1 worker"],
                Target(
                    name="ollama→openai, 1 worker",
                    port=openai_one.port,
                    server=openai_one,
                    client="ollama",
                    upstream="openai",
                    workers=1,
                ),
            ]
            tools = await phase(report, "tool calls", tool_calls(tool_targets, plan))
            data["tools"] = tools
            scaled = await phase(
                report,
                "workers",
                scaling(
                    by_name["ollama→ollama, 1 worker"],
                    by_name["ollama→ollama, 2 workers"],
                    plan,
                    load_side,
                ),
            )
            data["scaling"] = scaled
            spots = []
            for name in ("ollama→ollama, 1 worker", "openai→ollama, 1 worker"):
                spots.append(
                    await phase(report, f"profile {name}", hotspots(by_name[name], plan, load_side))
                )
            data["hotspots"] = spots
            flood = await phase(report, "bad keys", bad_keys(procs, upstream_port, plan, Path(tmp)))
            data["flood"] = flood
            logs: list[str] = [line for t in [*gateways, *references] for line in t.log_lines()]
            logs += flood.pop("log")
    report.tables += [
        *tables.sweep_tables(figs, plan),
        tables.published_table(figs, plan),
        tables.aims_table(figs),
        tables.references_table(figs),
        tables.prompts_table(prompts, ones, directs),
        tables.neighbours_table(near, slow[1:], directs),
        tables.tools_table(tools, tool_targets, plan),
        tables.flood_table(flood, plan),
        tables.scaling_table(scaled),
        *(tables.hotspots_table(s) for s in spots),
    ]
    return logs


async def main(plan: Plan, mode: str, plot_path: Path, only: str | None = None) -> int:
    title = "What Córtex adds under concurrency (added = through Córtex − direct)"
    if only is not None:
        mode = f"{mode}, only {only}"
    report, pinning = begin_run(title, mode, plan)
    logs = await (scaling_only if only == "scaling" else measure)(plan, report, pinning)
    report.finish(logs)
    json_path = write_results("concurrency", report.data)
    if only is None:
        if mode != "full":
            plot_path = json_path.with_name(f"{json_path.stem}.png")
        plot(report.data["sweep"], plot_path, PLOT_TITLE)
    report.print_tables()
    report.print_end(json_path)
    if only is None:
        shown = plot_path.relative_to(ROOT) if plot_path.is_relative_to(ROOT) else plot_path
        print(f"plot in {shown}")
    return 0


def cli(argv: list[str] | None = None) -> None:
    command = parser(__doc__, "one small round, under two minutes")
    command.add_argument("--plot", type=Path, default=PLOT, help="where a full run puts the plot")
    command.add_argument("--replot", type=Path, help="draw the plot of a results JSON, and stop")
    command.add_argument("--only", choices=["scaling"], help="run this part alone")
    args = command.parse_args(argv)
    if args.replot:
        sweep = orjson.loads(args.replot.read_bytes())["sweep"]
        figs = {name: {int(c): f for c, f in levels.items()} for name, levels in sweep.items()}
        plot(figs, args.plot, PLOT_TITLE)
        return
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    run_benchmark(main(plan, mode, args.plot, args.only), "the upstream and Córtex")


if __name__ == "__main__":
    cli()
