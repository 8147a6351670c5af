"""Córtex relay benchmark: the same load straight at a fake model server and through Córtex.

    .venv/bin/python bench/relay.py [--quick]

Starts a fast fake upstream (bench/fake_upstream.py, speaking both Ollama and
OpenAI) and two ``cortex serve`` (one in front of each dialect) as subprocesses,
pinned to different CPUs when the machine allows. For the Ollama path it
measures time to first chunk at concurrency 1 and 64, relay throughput with
Córtex's CPU cost per 1000 lines, and how fast a client hang-up reaches the
upstream; then it compares the four client → upstream dialect paths (two
relayed byte for byte, two translated) side by side. Prints two tables and
writes JSON to bench/results/. Its parts are in bench/suites/relay/: the plan,
scenarios (a) to (d), the dialect paths (e), the cost fit, and the tables.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.cli import parser, quick_or_full, run_benchmark
from harness.processes import Processes, processes
from harness.results import Report, begin_run, write_results
from harness.servers import start_cortex, start_upstream
from harness.tables import Table
from suites.relay.paths import PAIRS, Paths, Route
from suites.relay.paths_table import paths_table
from suites.relay.plan import QUICK, Plan
from suites.relay.rows import MAIN_HEADER, disconnect_rows, scenario_rows
from suites.relay.scenarios import Targets, disconnects, latency, throughput


async def relayed(procs: Processes, plan: Plan, report: Report) -> list[str]:
    """Scenarios (a) to (c') and (e) against one fake upstream subprocess; Córtex's log lines."""
    upstream, upstream_port = await start_upstream(procs)
    cortex = await start_cortex(procs, upstream_port)
    cortex_openai = await start_cortex(procs, upstream_port, "openai")
    pids = {"cortex": cortex.proc.pid, "upstream": upstream.pid, "load generator": os.getpid()}
    targets = Targets(upstream_port, cortex.port, pids)
    front = {"ollama": cortex, "openai": cortex_openai}
    paths = [Route(c, u, front[u].port, front[u].proc.pid) for c, u in PAIRS]
    four = Paths(paths, upstream_port, upstream.pid, plan)
    try:
        c1 = await latency(targets, plan, plan.sequential, 1)
        cn = await latency(targets, plan, plan.concurrent, plan.concurrency)
        c = await throughput(targets, plan.cpu_streams, plan.cpu_tokens)
        paced = await throughput(targets, plan.cpu_streams, plan.paced_tokens, plan.paced_delay_ms)
        await four.measure()
    finally:
        await procs.stop(cortex.proc)
        await procs.stop(cortex_openai.proc)
        await procs.stop(upstream)
    stats = four.summary()
    report.data.update(concurrency_1=c1, concurrency_n=cn, throughput=c, paced=paced, paths=stats)
    scenario_rows(report, plan, c1, cn, c, paced)
    report.tables.append(paths_table(stats, paths, plan))
    return cortex.log_lines() + cortex_openai.log_lines()


def print_footer(report: Report, path: Path) -> None:
    print(
        "TTFC: request written -> first complete message (NDJSON line or SSE event) carrying "
        "content or a role.\n'added' = via pXX - direct pXX. A message is one NDJSON line or "
        "one SSE event; (e) counts Córtex's CPU per 1000 the client received."
    )
    print("busy / waiting: share of wall time a process ran on a CPU / was runnable but not.")
    report.print_end(path)


async def main(plan: Plan, mode: str) -> int:
    title = "Córtex relay benchmark"
    report, pinning = begin_run(title, mode, plan, Table(MAIN_HEADER))
    async with processes(pinning) as procs:
        log = await relayed(procs, plan, report)
        report.data["disconnect"], more_log = await disconnects(procs, plan)
    disconnect_rows(report, report.data["disconnect"], plan)
    report.finish(log + more_log)
    report.print_tables()
    print_footer(report, write_results("relay", report.data))
    return 0


def cli(argv: list[str] | None = None) -> None:
    args = parser(__doc__, "smaller runs, about 30 s").parse_args(argv)
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    run_benchmark(main(plan, mode), "the upstream and Córtex")


if __name__ == "__main__":
    cli()
