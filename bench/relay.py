"""Córtex relay benchmark: the same load straight at a fake Ollama and through Córtex.

    .venv/bin/python bench/relay.py [--quick]

Starts a fast fake upstream (bench/fake_upstream.py) and ``cortex serve`` as
subprocesses, pinned to different CPUs when the machine allows, then measures
time to first chunk at concurrency 1 and 64, relay throughput with Córtex's CPU
cost per 1000 lines, and how fast a client hang-up reaches the upstream.
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fake_upstream import run, serve
from harness import (
    HERE,
    HOST,
    ROOT,
    CpuClock,
    Processes,
    choose_pinning,
    machine,
    measured,
    processes,
    start_cortex,
    start_upstream,
    summary,
)
from loadgen import Result, StreamConnection, chat_request, run_load

TARGET_ADDED_TTFC = 0.001  # seconds, p50 at concurrency 1 (the aim)
TARGET_DISCONNECT = 0.100  # seconds, client hang-up until the upstream connection is closed
Stats = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    sequential: int = 300
    concurrent: int = 640
    concurrency: int = 64
    short_tokens: int = 10
    cpu_streams: int = 64
    cpu_tokens: int = 2000
    paced_tokens: int = 400
    paced_delay_ms: float = 5
    disconnect_trials: int = 50
    disconnect_delay_ms: float = 20
    disconnect_after_lines: int = 3
    warmup: int = 50


QUICK = Plan(
    sequential=50,
    concurrent=128,
    cpu_tokens=500,
    paced_tokens=200,
    disconnect_trials=20,
    warmup=20,
)


@dataclass(frozen=True)
class Targets:
    direct: int  # port of the fake upstream
    via: int  # port of Córtex
    pids: dict[str, int]  # processes whose CPU is accounted

    def ports(self) -> tuple[tuple[str, int], ...]:
        return (("direct", self.direct), ("via", self.via))


@dataclass
class Row:
    label: str
    direct: str = ""
    via: str = ""
    added: str = ""
    target: str = ""

    def cells(self) -> list[str]:
        return [self.label, self.direct, self.via, self.added, self.target]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        self.rows.append(Row(*cells))


# ---- (a), (b): time to first chunk ----------------------------------------------------------


def checked(results: list[Result], what: str) -> list[Result]:
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)}/{len(results)} {what} streams failed: {bad[0].error}")
    return results


async def latency(targets: Targets, plan: Plan, requests: int, concurrency: int) -> Stats:
    """Short answers at one concurrency, straight and through Córtex."""
    out: Stats = {}
    for name, port in targets.ports():
        raw = chat_request(HOST, port, plan.short_tokens)
        warmup = max(plan.warmup, concurrency * 2)
        checked((await run_load(HOST, port, raw, warmup, concurrency))[0], f"{name} warm-up")
        (results, wall), used = await measured(
            targets.pids, run_load(HOST, port, raw, requests, concurrency)
        )
        checked(results, name)
        out[name] = {
            "ttfc": summary([r.ttfc for r in results]),
            "total": summary([r.total for r in results]),
            "requests_per_s": requests / wall,
            "wall_s": wall,
            "processes": used,
        }
    return out


def latency_rows(report: Report, title: str, stats: Stats, aim: bool) -> None:
    report.add(title)
    direct, via = stats["direct"], stats["via"]
    for q in ("p50", "p99"):
        d, v = direct["ttfc"][q], via["ttfc"][q]
        target = verdict(v - d, TARGET_ADDED_TTFC) if aim and q == "p50" else ""
        report.add(f"  TTFC {q}", ms(d), ms(v), added(d, v), target)
    d, v = direct["total"]["p50"], via["total"]["p50"]
    report.add("  whole answer p50", ms(d), ms(v), added(d, v))
    d, v = direct["requests_per_s"], via["requests_per_s"]
    report.add("  requests/s", f"{d:,.0f}", f"{v:,.0f}", f"x{v / d:.2f}")
    cortex = via["processes"]["cortex"]
    report.add("  Córtex CPU per request", "", ms(cortex["cpu_s"] / via["ttfc"]["n"]))
    report.add("  Córtex busy / waiting for a CPU", "", busy(cortex, via["wall_s"]))


# ---- (c): throughput and CPU per line -------------------------------------------------------


async def throughput(targets: Targets, streams: int, tokens: int, delay_ms: float = 0) -> Stats:
    """Many long answers at once: lines per second, and which process spends the CPU."""
    out: Stats = {}
    for name, port in targets.ports():
        warm = chat_request(HOST, port, tokens // 10, delay_ms)
        checked((await run_load(HOST, port, warm, streams, streams))[0], f"{name} warm-up")
        raw = chat_request(HOST, port, tokens, delay_ms)
        (results, wall), used = await measured(
            targets.pids, run_load(HOST, port, raw, streams, streams)
        )
        checked(results, name)
        lines = sum(r.lines for r in results)
        chunks = sum(r.chunks for r in results)
        out[name] = {"lines": lines, "chunks": chunks, "wall_s": wall, "processes": used}
    return out


def throughput_rows(report: Report, title: str, stats: Stats) -> None:
    report.add(title)
    direct, via = stats["direct"], stats["via"]
    d, v = (s["lines"] / s["wall_s"] for s in (direct, via))
    report.add("  lines/s", f"{d:,.0f}", f"{v:,.0f}", f"x{v / d:.2f}")
    per_k = via["processes"]["cortex"]["cpu_s"] / via["lines"] * 1000
    report.add("  Córtex CPU per 1000 lines", "", ms(per_k))
    d, v = (f"{s['lines'] / s['chunks']:.1f}" for s in (direct, via))
    report.add("  lines per HTTP chunk received", d, v)
    for name in ("cortex", "upstream", "load generator"):
        cells = [busy(s["processes"][name], s["wall_s"]) for s in (direct, via)]
        report.add(f"  {name} busy / waiting for a CPU", *cells)


def load_side_note(report: Report, stats: Stats) -> None:
    direct = stats["direct"]
    load = direct["processes"]
    load_busy = (load["upstream"]["cpu_s"] + load["load generator"]["cpu_s"]) / direct["wall_s"]
    if load_busy > 0.9:
        report.notes.append(
            f"(c) direct: the fake upstream and the load generator kept their shared CPU "
            f"{min(load_busy, 1):.0%} busy, so the direct figure is bounded by the load side "
            "(one line per chunk costs the load generator more than Córtex's batched chunks "
            "do), not by the network; read (c) by Córtex's CPU and busy share instead."
        )


# ---- (d): client hang-up to upstream closed -------------------------------------------------


async def hangup_trial(port: int, raw: bytes, lines: int, hangups: asyncio.Queue[float]) -> float:
    """Read a few lines of a slow answer, hang up, and time until the upstream notices."""
    while not hangups.empty():
        hangups.get_nowait()
    connection = await StreamConnection.open(HOST, port)
    await connection.read_lines(raw, lines)
    closed_at = time.perf_counter()
    connection.close()
    try:
        return await asyncio.wait_for(hangups.get(), 2) - closed_at
    except TimeoutError:
        return math.inf


async def hangups_at(port: int, plan: Plan, hangups: asyncio.Queue[float]) -> list[float]:
    raw = chat_request(HOST, port, 100_000, plan.disconnect_delay_ms)
    lines = plan.disconnect_after_lines
    for _ in range(3):
        await hangup_trial(port, raw, lines, hangups)
    return [await hangup_trial(port, raw, lines, hangups) for _ in range(plan.disconnect_trials)]


async def disconnects(procs: Processes, plan: Plan) -> tuple[Stats, list[str]]:
    """The upstream runs in this event loop, so it times the hang-up on the same clock;
    a second Córtex relays to it."""
    hangups: asyncio.Queue[float] = asyncio.Queue()
    server = await serve(HOST, 0, hangups.put_nowait)
    port = server.sockets[0].getsockname()[1]
    cortex = await start_cortex(procs, port)
    try:
        direct = await hangups_at(port, plan, hangups)
        via = await hangups_at(cortex.port, plan, hangups)
    finally:
        await procs.stop(cortex.proc)
        server.close()
    stats = {"direct": summary(direct), "via": summary(via)}
    stats["via"]["missed"] = sum(math.isinf(x) for x in via)
    return stats, cortex.log_lines()


def disconnect_rows(report: Report, stats: Stats, plan: Plan) -> None:
    report.add(
        f"(d) hang up after {plan.disconnect_after_lines} lines (a token every "
        f"{plan.disconnect_delay_ms:g} ms) until the upstream sees its connection close"
    )
    for q in ("p50", "p99"):
        d, v = stats["direct"][q], stats["via"][q]
        n = stats["via"]["n"]
        report.add(f"  {q} of {n} trials", ms(d), ms(v), added(d, v), verdict(v, TARGET_DISCONNECT))
    if stats["via"]["missed"]:
        report.add("  upstream never saw the hang-up", "", f"{stats['via']['missed']} trials")


# ---- formatting -----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def added(direct: float, via: float) -> str:
    return f"{(via - direct) * 1e3:+.3f} ms"


def verdict(value: float, limit: float) -> str:
    return f"< {limit * 1e3:g} ms {'PASS' if value < limit else 'FAIL'}"


def busy(process: dict[str, float], wall: float) -> str:
    return f"{process['cpu_s'] / wall:.0%} / {process['wait_s'] / wall:.0%}"


def print_table(report: Report) -> None:
    header = Row("scenario", "direct", "via Córtex", "added / ratio", "target")
    table = [r.cells() for r in (header, *report.rows)]
    widths = [max(len(cells[i]) for cells in table if any(cells[1:])) for i in range(5)]
    rule = "-" * (sum(widths) + 8)
    print(rule)
    for i, cells in enumerate(table):
        if not any(cells[1:]):
            print(cells[0])
            continue
        right = (f"{cell:>{width}}" for cell, width in zip(cells[1:], widths[1:], strict=True))
        print(f"{cells[0]:<{widths[0]}}  " + "  ".join(right))
        if i == 0:
            print(rule)
    print(rule)


def print_header(data: dict[str, Any]) -> None:
    m = data["machine"]
    print(f"Córtex relay benchmark ({data['mode']}), Córtex from {m['cortex_source']}")
    print(f"machine: {m['nproc']} CPUs usable ({m['cpu_count']} online), {m['cpu_model']}")
    print(f"python {m['python']}, {m['platform']}, load average {m['loadavg'][0]:.2f}")
    print(f"pinning: {data['pinning']}")
    print("running...", flush=True)


def print_footer(report: Report, path: Path) -> None:
    print("TTFC: request written -> first complete NDJSON line. 'added' = via pXX - direct pXX.")
    print("busy / waiting: share of wall time a process ran on a CPU / was runnable but not.")
    for note in report.notes:
        print(f"note: {note}")
    print(f"took {report.data['elapsed_s']:.1f} s; results in {path.relative_to(ROOT)}")


def write_json(data: dict[str, Any]) -> Path:
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / f"relay-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return path


# ---- main -----------------------------------------------------------------------------------


async def relayed(procs: Processes, plan: Plan, report: Report) -> list[str]:
    """Scenarios (a) to (c) against one fake upstream subprocess; Córtex's log lines."""
    upstream, upstream_port = await start_upstream(procs)
    cortex = await start_cortex(procs, upstream_port)
    pids = {"cortex": cortex.proc.pid, "upstream": upstream.pid, "load generator": os.getpid()}
    targets = Targets(upstream_port, cortex.port, pids)
    try:
        c1 = await latency(targets, plan, plan.sequential, 1)
        cn = await latency(targets, plan, plan.concurrent, plan.concurrency)
        c = await throughput(targets, plan.cpu_streams, plan.cpu_tokens)
        paced = await throughput(targets, plan.cpu_streams, plan.paced_tokens, plan.paced_delay_ms)
    finally:
        await procs.stop(cortex.proc)
        await procs.stop(upstream)
    report.data.update(concurrency_1=c1, concurrency_n=cn, throughput=c, paced=paced)
    tokens = plan.short_tokens
    latency_rows(
        report, f"(a) concurrency 1, {plan.sequential} requests x {tokens} tokens", c1, True
    )
    n, requests = plan.concurrency, plan.concurrent
    latency_rows(report, f"(b) concurrency {n}, {requests} requests x {tokens} tokens", cn, False)
    streams = plan.cpu_streams
    throughput_rows(report, f"(c) {streams} streams x {plan.cpu_tokens} tokens, no delay", c)
    load_side_note(report, c)
    throughput_rows(
        report,
        f"(c') {streams} streams x {plan.paced_tokens} tokens, "
        f"a token every {plan.paced_delay_ms:g} ms per stream",
        paced,
    )
    return cortex.log_lines()


async def main(plan: Plan, mode: str) -> int:
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    started, cpu = time.monotonic(), CpuClock.now()
    pinning = choose_pinning()
    report = Report(data={"mode": mode, "plan": asdict(plan), "machine": machine()})
    report.data["pinning"] = pinning.describe()
    print_header(report.data)
    if pinning.load is not None:
        os.sched_setaffinity(0, pinning.load)
    async with processes(pinning) as procs:
        log = await relayed(procs, plan, report)
        report.data["disconnect"], more_log = await disconnects(procs, plan)
    disconnect_rows(report, report.data["disconnect"], plan)
    finish(report, started, cpu, log + more_log)
    print_table(report)
    print_footer(report, write_json(report.data))
    return 0


def finish(report: Report, started: float, cpu: CpuClock, log: list[str]) -> None:
    """Record the run's length, whether anything else used the machine, and Córtex's log."""
    elapsed = time.monotonic() - started
    others = CpuClock.now().others_since(cpu, elapsed)
    report.data.update(elapsed_s=elapsed, cortex_log=log, machine_cpu_not_ours=others)
    if others["others"] > 0.05 or others["steal"] > 0.02:
        report.notes.append(
            f"other processes used {others['others']:.0%} of this machine's CPU during the run"
            f" and the hypervisor stole {others['steal']:.0%}: expect noisy figures."
        )
    if log:
        report.notes.append(f"Córtex logged {len(log)} line(s) at warning or above: {log[0]}")


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, about 15 s")
    args = parser.parse_args(argv)
    plan, mode = (QUICK, "quick") if args.quick else (Plan(), "full")
    try:
        sys.exit(run(main(plan, mode)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the upstream and Córtex were stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli()
