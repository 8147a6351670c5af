"""Córtex relay benchmark: the same load straight at a fake model server and through Córtex.

    .venv/bin/python bench/relay.py [--quick]

Starts a fast fake upstream (bench/fake_upstream.py, speaking both Ollama and
OpenAI) and two ``cortex serve`` (one in front of each dialect) as subprocesses,
pinned to different CPUs when the machine allows. For the Ollama path it
measures time to first chunk at concurrency 1 and 64, relay throughput with
Córtex's CPU cost per 1000 lines, and how fast a client hang-up reaches the
upstream; then it compares the four client → upstream dialect paths (two
relayed byte for byte, two translated) side by side. Prints two tables and
writes JSON to bench/results/.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fake_upstream import serve
from harness import (
    HOST,
    Processes,
    choose_pinning,
    measured,
    processes,
    start_cortex,
    start_upstream,
    summary,
)
from loadgen import (
    DIALECTS,
    ChatRequest,
    Dialect,
    Result,
    chat_request,
    checked,
    hangup_trial,
    run_load,
)
from report import (
    Report,
    Run,
    Table,
    cancel_on_sigterm,
    ms,
    parser,
    plus_ms,
    print_machine,
    quick_or_full,
    ratio,
    rounds_of,
    run_benchmark,
    write_results,
)

TARGET_ADDED_TTFC = 0.001  # seconds, p50 at concurrency 1 (the aim)
TARGET_DISCONNECT = 0.100  # seconds, client hang-up until the upstream connection is closed
MIN_FIT_RUNS = 9  # (e)'s cost fit: three rounds of the three loads
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
    # (e): the four dialect paths, measured in interleaved rounds
    path_rounds: int = 5
    path_sequential: int = 300  # per round and target, at concurrency 1
    path_warmup: int = 20  # per round and target


QUICK = Plan(
    sequential=50,
    concurrent=128,
    cpu_tokens=500,
    paced_tokens=200,
    disconnect_trials=20,
    warmup=20,
    path_rounds=1,
    path_sequential=100,
)


@dataclass(frozen=True)
class Targets:
    direct: int  # port of the fake upstream
    via: int  # port of Córtex
    pids: dict[str, int]  # processes whose CPU is accounted

    def ports(self) -> tuple[tuple[str, int], ...]:
        return (("direct", self.direct), ("via", self.via))


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


MAIN_HEADER = ["scenario", "direct", "via Córtex", "added / ratio", "target"]


# ---- (a), (b): time to first chunk ----------------------------------------------------------


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
        lines = sum(r.messages for r in results)
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


async def hangups_at(port: int, plan: Plan, hangups: asyncio.Queue[float]) -> list[float]:
    raw = chat_request(HOST, port, 100_000, plan.disconnect_delay_ms)
    lines = plan.disconnect_after_lines
    for _ in range(3):
        await hangup_trial(HOST, port, raw, lines, hangups)
    trials = range(plan.disconnect_trials)
    return [await hangup_trial(HOST, port, raw, lines, hangups) for _ in trials]


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


# ---- (e): the four dialect paths ------------------------------------------------------------


async def dialect_paths(
    paths: list[Route], upstream_port: int, upstream_pid: int, plan: Plan
) -> dict[str, Any]:
    """Each client dialect straight at the fake upstream, and the four paths through Córtex,
    in interleaved rounds (reversed every other round) so drift hits them all alike.

    Every run through Córtex is kept (messages, HTTP chunks and requests the client
    received, Córtex's CPU) for the summaries and the cost fit; TTFC samples are pooled.
    """
    me = os.getpid()
    direct: dict[str, list[Result]] = {d: [] for d in DIALECTS}
    c1: dict[str, list[Result]] = {p.name: [] for p in paths}
    runs: dict[str, dict[str, list[Run]]] = {
        p.name: {"concurrency_1": [], "throughput": [], "paced": []} for p in paths
    }

    async def load(
        target: Route | Dialect, request: ChatRequest, requests: int, concurrency: int
    ) -> tuple[list[Result], Run | None]:
        if isinstance(target, Route):
            port, what = target.port, target.name
            pids = {"cortex": target.pid, "upstream": upstream_pid, "load generator": me}
        else:
            port, what = upstream_port, f"{target} direct"
            pids = {"upstream": upstream_pid, "load generator": me}
        (results, wall), used = await measured(
            pids, run_load(HOST, port, request, requests, concurrency)
        )
        checked(results, what)
        if "cortex" not in used:
            return results, None
        return results, Run.of(results, wall, [used["cortex"]])

    async def sequential(target: Route | Dialect) -> None:
        port, dialect = (
            (target.port, target.client) if isinstance(target, Route) else (upstream_port, target)
        )
        request = chat_request(HOST, port, plan.short_tokens, dialect=dialect)
        await load(target, request, plan.path_warmup, 1)
        results, run = await load(target, request, plan.path_sequential, 1)
        if isinstance(target, Route):
            assert run is not None
            c1[target.name] += results
            runs[target.name]["concurrency_1"].append(run)
        else:
            direct[target] += results

    async def streams(path: Route, key: str, tokens: int, delay_ms: float) -> None:
        n = plan.cpu_streams
        warm = chat_request(HOST, path.port, tokens // 10, delay_ms, path.client)
        await load(path, warm, n, n)
        request = chat_request(HOST, path.port, tokens, delay_ms, path.client)
        _, run = await load(path, request, n, n)
        assert run is not None
        runs[path.name][key].append(run)

    for round_ in range(plan.path_rounds):
        forward = round_ % 2 == 0
        order: list[Route | Dialect] = [*DIALECTS, *paths]
        for target in order if forward else order[::-1]:
            await sequential(target)
        for path in paths if forward else paths[::-1]:
            await streams(path, "throughput", plan.cpu_tokens, 0)
        for path in paths if forward else paths[::-1]:
            await streams(path, "paced", plan.paced_tokens, plan.paced_delay_ms)

    def latency_of(results: list[Result]) -> dict[str, Any]:
        return {
            "ttfc": summary([r.ttfc for r in results]),
            "total": summary([r.total for r in results]),
        }

    out: dict[str, Any] = {
        "rounds": plan.path_rounds,
        "direct": {d: latency_of(direct[d]) for d in DIALECTS},
        "paths": {},
    }
    for p in paths:
        mine = runs[p.name]
        c1_cpu = sum(r.cpu_s for r in mine["concurrency_1"])
        everything = [r for kind in mine.values() for r in kind]
        out["paths"][p.name] = {
            "client": p.client,
            "upstream": p.upstream,
            "translated": p.translated,
            "baseline": f"{p.upstream} direct",
            "concurrency_1": {
                **latency_of(c1[p.name]),
                "cortex_cpu_ms_per_request": c1_cpu / len(c1[p.name]) * 1e3,
                "rounds": [asdict(r) for r in mine["concurrency_1"]],
            },
            "throughput": rounds_of(mine["throughput"]),
            "paced": rounds_of(mine["paced"]),
            "cost_fit": cost_fit(everything),
        }
    return out


def cost_fit(runs: list[Run]) -> dict[str, float] | None:
    """Córtex's CPU over a path's runs as a x messages + b x HTTP chunks + c x requests.

    Weighted least squares on relative error (each run divided by its own CPU), so the
    short concurrency-1 runs count as much as the long ones. ``a`` is what one more
    message costs when its chunk's cost is shared: the many-token figure that does not
    depend on how far behind the upstream Córtex happened to fall.
    """
    if len(runs) < MIN_FIT_RUNS or any(r.cpu_s <= 0 for r in runs):
        return None
    rows = [(r.messages / r.cpu_s, r.chunks / r.cpu_s, r.requests / r.cpu_s) for r in runs]
    normal = [[sum(x[i] * x[j] for x in rows) for j in range(3)] for i in range(3)]
    rhs = [sum(x[i] for x in rows) for i in range(3)]
    solution = solve3(normal, rhs)
    if solution is None:
        return None
    a, b, c = solution
    if min(a, b, c) <= 0:
        return None  # the runs did not pin the three costs down
    errors = [abs(a * r.messages + b * r.chunks + c * r.requests - r.cpu_s) / r.cpu_s for r in runs]
    return {
        "cpu_ms_per_1000_messages": a * 1e6,
        "cpu_ms_per_1000_chunks": b * 1e6,
        "cpu_ms_per_request": c * 1e3,
        "max_relative_error": max(errors),
        "runs": len(runs),
    }


def solve3(m: list[list[float]], v: list[float]) -> tuple[float, float, float] | None:
    """Cramer's rule for a 3x3 system; None when it is (nearly) singular."""

    def det(a: list[list[float]]) -> float:
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    d = det(m)
    scale = max(abs(x) for row in m for x in row) ** 3
    if abs(d) <= 1e-12 * scale:
        return None
    columns = []
    for k in range(3):
        replaced = [[v[i] if j == k else m[i][j] for j in range(3)] for i in range(3)]
        columns.append(det(replaced) / d)
    return columns[0], columns[1], columns[2]


def paths_table(stats: dict[str, Any], paths: list[Route], plan: Plan) -> Table:
    rounds = stats["rounds"]
    table = Table(
        [f"(e) client→upstream dialect, {rounds} interleaved round(s)"] + [p.name for p in paths]
    )
    by = stats["paths"]
    direct = stats["direct"]
    first = paths[0].name
    same = {p.client: p.name for p in paths if not p.translated}

    def row(label: str, cell: Any) -> None:
        table.add(label, *(cell(p, by[p.name]) for p in paths))

    def ratios(value: Any) -> None:
        """The vs-ollama→ollama and translated/same-dialect rows for a figure."""
        row(f"    vs {first}", lambda p, s: ratio(value(s), value(by[first])))
        row(
            "    translated / same-dialect, same client",
            lambda p, s: ratio(value(s), value(by[same[p.client]])) if p.translated else "",
        )

    row("  relayed as", lambda p, _: "translated" if p.translated else "bytes")
    row("  direct baseline: client →", lambda p, _: f"{p.upstream} fake")
    n = plan.path_sequential * rounds
    table.add(f"concurrency 1, {n} requests x {plan.short_tokens} tokens per path")
    for q in ("p50", "p99"):
        row(f"  TTFC {q} direct", lambda p, _, q=q: ms(direct[p.upstream]["ttfc"][q]))
        row(f"  TTFC {q} via Córtex", lambda p, s, q=q: ms(s["concurrency_1"]["ttfc"][q]))
        row(
            f"  TTFC {q} added",
            lambda p, s, q=q: added(direct[p.upstream]["ttfc"][q], s["concurrency_1"]["ttfc"][q]),
        )
    row(
        f"  added p50 target < {TARGET_ADDED_TTFC * 1e3:g} ms",
        lambda p, s: (
            "PASS"
            if s["concurrency_1"]["ttfc"]["p50"] - direct[p.upstream]["ttfc"]["p50"]
            < TARGET_ADDED_TTFC
            else "FAIL"
        ),
    )
    row(
        "  whole answer p50 added",
        lambda p, s: added(direct[p.upstream]["total"]["p50"], s["concurrency_1"]["total"]["p50"]),
    )
    row(
        "  Córtex CPU per request",
        lambda p, s: f"{s['concurrency_1']['cortex_cpu_ms_per_request']:.3f} ms",
    )

    def spread(key: str) -> None:
        if rounds > 1:
            row(
                "    min - max of the rounds, ms",
                lambda p, s: (
                    f"{s[key]['cpu_ms_per_1000_min']:.1f} - {s[key]['cpu_ms_per_1000_max']:.1f}"
                ),
            )

    table.add("Córtex CPU per 1000 messages, measured (median of the rounds)")
    row(
        f"  {plan.cpu_streams} x {plan.cpu_tokens} tokens, no delay",
        lambda p, s: ms(s["throughput"]["cpu_ms_per_1000"] / 1e3),
    )
    spread("throughput")
    row(
        "    messages per HTTP chunk sent",
        lambda p, s: f"{s['throughput']['messages_per_chunk']:.1f}",
    )
    row("    messages/s via Córtex", lambda p, s: f"{s['throughput']['messages_per_s']:,.0f}")
    row(
        "    Córtex busy / waiting for a CPU",
        lambda p, s: (
            f"{s['throughput']['cortex_busy']:.0%} / {s['throughput']['cortex_waiting']:.0%}"
        ),
    )
    row(
        f"  {plan.cpu_streams} x {plan.paced_tokens} tokens, {plan.paced_delay_ms:g} ms apart",
        lambda p, s: ms(s["paced"]["cpu_ms_per_1000"] / 1e3),
    )
    spread("paced")
    row("    messages per HTTP chunk sent", lambda p, s: f"{s['paced']['messages_per_chunk']:.1f}")
    ratios(lambda s: s["paced"]["cpu_ms_per_1000"])

    if not all(s["cost_fit"] for s in by.values()):
        table.add(f"(no cost fit: it needs {MIN_FIT_RUNS // 3} or more rounds that pin it down)")
    else:
        table.add(
            "Córtex CPU fitted over all runs of a path: a x messages + b x chunks + c x requests"
        )
        row(
            "  a: per 1000 messages (many tokens)",
            lambda p, s: ms(s["cost_fit"]["cpu_ms_per_1000_messages"] / 1e3),
        )
        ratios(lambda s: s["cost_fit"]["cpu_ms_per_1000_messages"])
        row(
            "  b: per 1000 HTTP chunks sent",
            lambda p, s: ms(s["cost_fit"]["cpu_ms_per_1000_chunks"] / 1e3),
        )
        row("  c: per request", lambda p, s: ms(s["cost_fit"]["cpu_ms_per_request"] / 1e3))
        row(
            "  largest error of the fit on one run",
            lambda p, s: f"{s['cost_fit']['max_relative_error']:.0%}",
        )
    return table


# ---- formatting -----------------------------------------------------------------------------


def added(direct: float, via: float) -> str:
    return plus_ms(via - direct)


def verdict(value: float, limit: float) -> str:
    return f"< {limit * 1e3:g} ms {'PASS' if value < limit else 'FAIL'}"


def busy(process: dict[str, float], wall: float) -> str:
    return f"{process['cpu_s'] / wall:.0%} / {process['wait_s'] / wall:.0%}"


def print_header(data: dict[str, Any]) -> None:
    m = data["machine"]
    print(f"Córtex relay benchmark ({data['mode']}), Córtex from {m['cortex_source']}")
    print_machine(m)
    print(f"pinning: {data['pinning']}")
    print("running...", flush=True)


def print_footer(report: Report, path: Path) -> None:
    print(
        "TTFC: request written -> first complete message (NDJSON line or SSE event) carrying "
        "content or a role.\n'added' = via pXX - direct pXX. A message is one NDJSON line or "
        "one SSE event; (e) counts Córtex's CPU per 1000 the client received."
    )
    print("busy / waiting: share of wall time a process ran on a CPU / was runnable but not.")
    report.print_end(path)


# ---- main -----------------------------------------------------------------------------------


async def relayed(procs: Processes, plan: Plan, report: Report) -> list[str]:
    """Scenarios (a) to (c') and (e) against one fake upstream subprocess; Córtex's log lines."""
    upstream, upstream_port = await start_upstream(procs)
    cortex = await start_cortex(procs, upstream_port)
    cortex_openai = await start_cortex(procs, upstream_port, "openai")
    pids = {"cortex": cortex.proc.pid, "upstream": upstream.pid, "load generator": os.getpid()}
    targets = Targets(upstream_port, cortex.port, pids)
    front = {"ollama": cortex, "openai": cortex_openai}
    pairs: list[tuple[Dialect, Dialect]] = [
        ("ollama", "ollama"),
        ("openai", "openai"),
        ("ollama", "openai"),
        ("openai", "ollama"),
    ]
    paths = [Route(c, u, front[u].port, front[u].proc.pid) for c, u in pairs]
    try:
        c1 = await latency(targets, plan, plan.sequential, 1)
        cn = await latency(targets, plan, plan.concurrent, plan.concurrency)
        c = await throughput(targets, plan.cpu_streams, plan.cpu_tokens)
        paced = await throughput(targets, plan.cpu_streams, plan.paced_tokens, plan.paced_delay_ms)
        four = await dialect_paths(paths, upstream_port, upstream.pid, plan)
    finally:
        await procs.stop(cortex.proc)
        await procs.stop(cortex_openai.proc)
        await procs.stop(upstream)
    report.data.update(concurrency_1=c1, concurrency_n=cn, throughput=c, paced=paced, paths=four)
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
    report.tables.append(paths_table(four, paths, plan))
    return cortex.log_lines() + cortex_openai.log_lines()


async def main(plan: Plan, mode: str) -> int:
    cancel_on_sigterm()
    report = Report.begin(mode, plan, Table(MAIN_HEADER))
    pinning = choose_pinning()
    report.data["pinning"] = pinning.describe()
    print_header(report.data)
    pinning.pin_load_generator()
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
