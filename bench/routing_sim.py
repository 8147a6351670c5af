"""A routing simulator: real Córtex in front of simulated Ollama servers, under each routing rule.

    .venv/bin/python bench/routing_sim.py [--quick] [--plot PATH] [--rules R,..] [--set K=V]

Each case starts fresh simulated Ollama servers (bench/sim_upstream.py: model
loads and evictions under a memory budget, a prompt cache per loaded model,
time to first token growing with the uncached part of the prompt) in this
process, one or two ``cortex serve`` subprocesses in front of them with
``routing`` set to the rule, and aiohttp clients that stream ``/api/chat``
conversations through Córtex. Workloads (seeded, the same for every rule):

- ``shared-prefix``: multi-turn chats sharing a few long system prompts, half with
  a long retrieved document, on three backends with one model each in memory;
- ``three-models``: chats for three models (popularity 3:2:1) on three backends
  with room for two models each, each starting with a different one loaded;
- ``shared-prefix x2``: the first workload through two Córtex instances, the
  clients alternating requests between them (client-side round robin);
- ``shared-prefix x2 redis``: the same under ``state`` only, the two instances
  sharing where they sent each prompt through a redis-server started for it.

Measured at the clients: time to first token (request sent to first content
token), p50 and p99, and whether a conversation's turn went to the backend of its
previous turn (``X-Cortex-Backend``); at the servers: loads, evictions, and the
share of prompt tokens found in the prompt cache. Prints a table and the
targets' ratios, writes JSON to bench/results/ and an ECDF plot of TTFT to
docs/routing-ttft.png (``--quick``: beside the JSON). Its parts are in
bench/suites/routing/.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from harness.cli import cancel_on_sigterm, parser, quick_or_full, run_benchmark
from harness.machine import ROOT, cortex_source
from harness.pinning import choose_pinning
from harness.processes import processes
from harness.results import facts, write_results
from sim_upstream import Timing
from suites.routing.case import run_case
from suites.routing.plan import PLOT, QUICK, RULES, Plan
from suites.routing.plot import plot
from suites.routing.report import print_report, table, targets
from suites.routing.workloads import workloads


async def main(
    quick: bool, plot_path: Path | None, rules: Sequence[str], settings: Sequence[str]
) -> int:
    cancel_on_sigterm()
    plan, mode = quick_or_full(quick, Plan(), QUICK)
    plan = replace(plan, settings=tuple(settings))
    pinning = choose_pinning()
    pinning.pin_load_generator()
    print(f"routing simulator, {mode} run; Córtex {cortex_source()}; {pinning.describe()}")
    started = time.monotonic()
    cases = []
    with tempfile.TemporaryDirectory(prefix="cortex-routing-") as tmp:
        async with processes(pinning) as procs:
            for work in workloads(plan):
                for rule in (r for r in rules if r in work.rules):
                    case = await run_case(procs, plan, work, rule, Path(tmp))
                    done = f"{len(case.records)} requests in {case.wall_s:.1f} s"
                    print(f"  {work.name:<22} {rule:<18} {done}", flush=True)
                    cases.append(case)
    elapsed = time.monotonic() - started
    goals = targets(cases)
    print_report(cases, goals, elapsed)
    payload = {
        **facts(mode, plan),
        "timing": asdict(Timing()),
        "elapsed_s": elapsed,
        "targets": goals,
        "table": table(cases),
        "cases": [{**asdict(c), "figures": c.figures()} for c in cases],
    }
    results = write_results("routing", payload)
    path = plot_path or (PLOT if not quick else results.with_suffix(".png"))
    plot(cases, path, f"Time to first token by routing rule ({mode} run)")
    print(f"results in {results.relative_to(ROOT)}; plot in {path}")
    return 1 if any(c.failed() for c in cases) else 0


def cli(argv: list[str] | None = None) -> None:
    command = parser(__doc__, "a short run (< 1 min): fewer conversations")
    command.add_argument("--plot", type=Path, help=f"where the plot goes [default: {PLOT}]")
    command.add_argument("--rules", default=",".join(RULES), help="rules to run, comma-separated")
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TOML line for every Córtex's config, e.g. affinity_slack=4 (repeatable)",
    )
    args = command.parse_args(argv)
    settings = [line.replace("=", " = ", 1) for line in args.set]
    run = main(args.quick, args.plot, args.rules.split(","), settings)
    run_benchmark(run, "the servers and Córtex")


if __name__ == "__main__":
    cli()
