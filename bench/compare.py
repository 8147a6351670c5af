"""Córtex beside nginx and a hand-written relay, side by side in one run (issue #7).

    bench/run [--quick]          # installs what is missing, then runs this
    .venv/bin/python bench/compare.py [--quick]

The same loads go straight at a fake model server (bench/fake_upstream.py) and
through three relays in front of it: nginx (the reference), Córtex, and the
FastAPI + httpx relay people write by hand (bench/handwritten.py); a second
Córtex, in front of the fake as an OpenAI server, gives the translated path
(Ollama client, OpenAI upstream). The relays share one CPU, the upstream and
the load generator the other. Prints the figures and the issue's targets with
met / missed, writes JSON to bench/results/ and a plot of the time to first
chunk to docs/performance-ttfc.png (a quick run puts it beside its JSON).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from string import Template
from typing import Any

import orjson
from fake_upstream import serve
from harness import (
    HERE,
    HOST,
    ROOT,
    Cortex,
    CpuClock,
    Processes,
    choose_pinning,
    cpu_of,
    family,
    free_port,
    measured,
    percentile,
    processes,
    start_cortex,
    start_gateway,
    start_upstream,
    summary,
)
from loadgen import (
    ChatRequest,
    Result,
    StreamConnection,
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
    print_table,
    quick_or_full,
    run_benchmark,
    write_results,
)

DIRECT, NGINX, CORTEX, HAND, TRANSLATED = (
    "direct",
    "nginx",
    "Córtex",
    "hand-written",
    "Córtex translated",
)
RELAYS = (NGINX, CORTEX, HAND)
PLOT = ROOT / "docs" / "performance-ttfc.png"

NGINX_CONF = Template("""\
worker_processes 1;
pid $dir/nginx-$port.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream model { server $upstream; keepalive 128; }
    server {
        listen $host:$port;
        location / {
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
""")


@dataclass(frozen=True)
class Plan:
    rounds: int = 5
    c1_requests: int = 200  # per round and target
    cn_requests: int = 256  # per round and target
    concurrency: int = 64
    short_tokens: int = 10
    cn_paced_requests: int = 192  # per round and target: 64 streams at a model's pace
    cn_paced_tokens: int = 20
    cn_paced_delay_ms: float = 20
    streams: int = 64
    fast_tokens: int = 1000
    paced_tokens: int = 200
    paced_delay_ms: float = 5
    warmup: int = 20
    disconnect_trials: int = 12  # per round and target
    disconnect_delay_ms: float = 20
    disconnect_after: int = 3
    background_streams: int = 32
    background_delay_ms: float = 5
    before: str = ""  # an earlier Córtex's src/ directory, measured beside this one


QUICK = Plan(
    rounds=1,
    c1_requests=150,
    cn_requests=192,
    fast_tokens=500,
    paced_tokens=100,
    disconnect_trials=15,
    background_streams=16,
)


# The aims of issue #7: seconds added over direct, ratios and shares.
TTFC_P50_C1, TTFC_P99_C1, TTFC_P99_CN = 0.0005, 0.002, 0.005
CPU_VS_NGINX, THROUGHPUT_SHARE, DISCONNECT_P99 = 2.0, 0.5, 0.050
# The aims of issue #17 (the relay below ASGI), all features on.
LEAN_TTFC_P50_C1, LEAN_CPU_PACED, LEAN_CPU_PACED_TRANSLATED = 0.0003, 1.5, 2.0
LEAN_CPU_PER_REQUEST, LEAN_BACK_TO_BACK_P99, LEAN_DISCONNECT_P99 = 0.0003, 0.020, 0.005


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    server: Cortex | None = None  # the relay's process and log; none for direct

    @property
    def pids(self) -> tuple[int, ...]:
        return () if self.server is None else tuple(family(self.server.proc.pid))

    def log_lines(self) -> list[str]:
        lines = [] if self.server is None else self.server.log_lines()
        return [f"{self.name}: {line}" for line in lines]


@dataclass(frozen=True)
class LoadRun(Run):
    """A run, and the CPU of the load side meanwhile: the upstream and the load generator,
    sharing a CPU."""

    load_side_cpu_s: float


@dataclass
class Samples:
    """Everything measured for one target over the rounds."""

    ttfc_c1: list[float] = field(default_factory=list)
    ttfc_cn: list[float] = field(default_factory=list)
    ttfc_cn_paced: list[float] = field(default_factory=list)
    short: list[LoadRun] = field(default_factory=list)  # the runs of 10-token answers
    short_c1: list[LoadRun] = field(default_factory=list)  # those at concurrency 1
    fast: list[LoadRun] = field(default_factory=list)
    paced: list[LoadRun] = field(default_factory=list)
    disconnect: list[float] = field(default_factory=list)


# ---- the relays -----------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("nginx is not installed: bench/run installs it (apt-get install nginx)")
    return found


async def start_nginx(procs: Processes, upstream_port: int, workdir: Path) -> Target:
    port = free_port()
    conf = workdir / f"nginx-{port}.conf"
    upstream = f"{HOST}:{upstream_port}"
    conf.write_text(NGINX_CONF.substitute(dir=workdir, port=port, host=HOST, upstream=upstream))
    argv = [nginx_binary(), "-p", str(workdir), "-c", str(conf), "-e", "stderr"]
    return Target(NGINX, port, await start_gateway(procs, [*argv, "-g", "daemon off;"], port))


async def start_handwritten(procs: Processes, upstream_port: int) -> Target:
    port = free_port()
    argv = [sys.executable, str(HERE / "handwritten.py"), "--port", str(port)]
    argv += ["--upstream", f"http://{HOST}:{upstream_port}"]
    return Target(HAND, port, await start_gateway(procs, argv, port))


async def start_relays(
    procs: Processes, upstream_port: int, workdir: Path, translated: bool, before: str = ""
) -> list[Target]:
    """Direct, then the relays in front of the upstream; the translated Córtex if asked,
    and the same from an earlier source tree (``before``)."""
    cortex = await start_cortex(procs, upstream_port)
    targets = [
        Target(DIRECT, upstream_port),
        await start_nginx(procs, upstream_port, workdir),
        Target(CORTEX, cortex.port, cortex),
        await start_handwritten(procs, upstream_port),
    ]
    if translated:
        openai = await start_cortex(procs, upstream_port, "openai")
        targets.append(Target(TRANSLATED, openai.port, openai))
    if before:
        python = ("env", f"PYTHONPATH={before}", sys.executable)  # env execs: the pid is Córtex's
        old = await start_cortex(procs, upstream_port, python=python)
        targets.append(Target(f"{CORTEX} before", old.port, old))
        if translated:
            old = await start_cortex(procs, upstream_port, "openai", python=python)
            targets.append(Target(f"{TRANSLATED} before", old.port, old))
    return targets


# ---- loads ----------------------------------------------------------------------------------


async def load(
    target: Target,
    request: ChatRequest,
    requests: int,
    concurrency: int,
    load_side: list[int],
    stagger: float = 0,
) -> tuple[list[Result], LoadRun]:
    pids = {f"relay {pid}": pid for pid in target.pids}
    pids |= {f"load {pid}": pid for pid in load_side}
    (results, wall), used = await measured(
        pids, run_load(HOST, target.port, request, requests, concurrency, stagger)
    )
    checked(results, target.name)
    relay = [u for name, u in used.items() if name.startswith("relay")]
    load_cpu = sum(float(u["cpu_s"]) for name, u in used.items() if name.startswith("load"))
    return results, LoadRun.of(results, wall, relay, load_side_cpu_s=load_cpu)


async def latency(
    target: Target,
    plan: Plan,
    concurrency: int,
    requests: int,
    load_side: list[int],
    paced: bool = False,
) -> tuple[list[float], LoadRun]:
    tokens, delay = (
        (plan.cn_paced_tokens, plan.cn_paced_delay_ms) if paced else (plan.short_tokens, 0)
    )
    stagger = tokens * delay / 1e3 / concurrency
    request = chat_request(HOST, target.port, tokens, delay)
    await load(target, request, max(plan.warmup, 2 * concurrency), concurrency, load_side)
    results, run_ = await load(target, request, requests, concurrency, load_side, stagger)
    return [r.ttfc for r in results], run_


async def streams(
    target: Target, plan: Plan, tokens: int, delay_ms: float, load_side: list[int]
) -> LoadRun:
    n = plan.streams
    await load(target, chat_request(HOST, target.port, tokens // 10, delay_ms), n, n, load_side)
    _, run_ = await load(target, chat_request(HOST, target.port, tokens, delay_ms), n, n, load_side)
    return run_


def ordered(targets: list[Target], round_: int) -> list[Target]:
    return targets if round_ % 2 == 0 else targets[::-1]


@dataclass(frozen=True)
class Snapshot:
    """The machine's CPU seconds so far, and those of the benchmark's process tree."""

    clock: CpuClock
    tree: float
    at: float

    @classmethod
    def now(cls) -> Snapshot:
        tree = cpu_of(family(os.getpid()))
        return cls(CpuClock.now(), tree, time.monotonic())

    def others_since(self, start: Snapshot) -> dict[str, float]:
        """Shares of the machine's CPU used by processes not the benchmark's, and stolen."""
        capacity = (self.at - start.at) * (os.cpu_count() or 1)
        busy = self.clock.machine_busy - start.clock.machine_busy
        others = busy - (self.tree - start.tree)
        steal = self.clock.steal - start.clock.steal
        return {"others": max(others, 0) / capacity, "steal": steal / capacity}


async def relay_rounds(
    targets: list[Target], plan: Plan, load_side: list[int], out: dict[str, Samples]
) -> list[dict[str, float]]:
    """TTFC at 1 and many streams, then CPU and throughput, in interleaved rounds (order
    reversed every other round) so drift hits every target alike. Returns each round's
    share of the machine used by others and stolen."""
    noise: list[dict[str, float]] = []
    for round_ in range(plan.rounds):
        start = Snapshot.now()
        for t in ordered(targets, round_):
            c1, run_ = await latency(t, plan, 1, plan.c1_requests, load_side)
            out[t.name].ttfc_c1 += c1
            out[t.name].short.append(run_)
            out[t.name].short_c1.append(run_)
        for t in ordered(targets, round_):
            cn, run_ = await latency(t, plan, plan.concurrency, plan.cn_requests, load_side)
            out[t.name].ttfc_cn += cn
            out[t.name].short.append(run_)
        for t in ordered(targets, round_):
            n, requests = plan.concurrency, plan.cn_paced_requests
            cn, _ = await latency(t, plan, n, requests, load_side, paced=True)
            out[t.name].ttfc_cn_paced += cn
        for t in ordered(targets, round_):
            out[t.name].fast.append(await streams(t, plan, plan.fast_tokens, 0, load_side))
        for t in ordered(targets, round_):
            paced = await streams(t, plan, plan.paced_tokens, plan.paced_delay_ms, load_side)
            out[t.name].paced.append(paced)
        noise.append(Snapshot.now().others_since(start))
        others, steal = noise[-1]["others"], noise[-1]["steal"]
        print(
            f"  round {round_ + 1}/{plan.rounds}: others used {others:.0%} of the machine, "
            f"the hypervisor stole {steal:.0%}",
            flush=True,
        )
    return noise


# ---- client hang-up under load --------------------------------------------------------------


class Background:
    """Long paced streams through a target, to hang up beside."""

    def __init__(self, connections: list[StreamConnection], tasks: list[asyncio.Task[Result]]):
        self.connections = connections
        self.tasks = tasks

    @classmethod
    async def start(cls, port: int, streams: int, delay_ms: float) -> Background:
        connections = await asyncio.gather(
            *(StreamConnection.open(HOST, port) for _ in range(streams))
        )
        request = chat_request(HOST, port, 10_000_000, delay_ms)
        tasks = [asyncio.ensure_future(c.request(request)) for c in connections]
        await asyncio.sleep(0.3)
        return cls(connections, tasks)

    async def stop(self, what: str) -> None:
        ended = [t.result() for t in self.tasks if t.done()]
        for connection in self.connections:
            connection.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if ended:
            raise RuntimeError(f"{what}: background streams ended early: {ended[0]}")


async def hangups_under_load(
    target: Target, plan: Plan, hangups: asyncio.Queue[float], trials: int
) -> list[float]:
    background = await Background.start(
        target.port, plan.background_streams, plan.background_delay_ms
    )
    request = chat_request(HOST, target.port, 100_000, plan.disconnect_delay_ms)
    try:
        await hangup_trial(HOST, target.port, request, plan.disconnect_after, hangups)
        return [
            await hangup_trial(HOST, target.port, request, plan.disconnect_after, hangups)
            for _ in range(trials)
        ]
    finally:
        await background.stop(target.name)
        await asyncio.sleep(0.5)


async def disconnect_rounds(
    procs: Processes, plan: Plan, workdir: Path, out: dict[str, Samples]
) -> list[str]:
    """The upstream runs in this event loop, so it sees the hang-up on the benchmark's
    clock; a fresh set of relays stands in front of it. Returns the relays' logs."""
    hangups: asyncio.Queue[float] = asyncio.Queue()
    server = await serve(HOST, 0, hangups.put_nowait)
    targets = await start_relays(procs, server.sockets[0].getsockname()[1], workdir, False)
    try:
        for round_ in range(plan.rounds):
            for t in ordered(targets, round_):
                trials = plan.disconnect_trials
                out[t.name].disconnect += await hangups_under_load(t, plan, hangups, trials)
        return [line for t in targets for line in t.log_lines()]
    finally:
        await procs.stop_all()
        server.close()


# ---- figures --------------------------------------------------------------------------------


def median_of(runs: list[LoadRun], value: Callable[[LoadRun], float]) -> float:
    return statistics.median(value(r) for r in runs)


ADDED = (("c1", 50), ("c1", 99), ("cn_paced", 99), ("cn", 99))


def added(mine: list[float], direct: list[float], q: float, rounds: int) -> tuple[float, float]:
    """A relay's percentile minus direct's: over the pooled samples, and the median over
    the rounds of each round's (one round disturbed by the host moves only the first)."""
    pooled = percentile(mine, q) - percentile(direct, q)
    size, base = len(mine) // rounds, len(direct) // rounds
    by_round = [
        percentile(mine[i * size : (i + 1) * size], q)
        - percentile(direct[i * base : (i + 1) * base], q)
        for i in range(rounds)
    ]
    return pooled, statistics.median(by_round)


def figures(samples: dict[str, Samples], rounds: int) -> dict[str, dict[str, Any]]:
    direct = samples[DIRECT]
    out: dict[str, dict[str, Any]] = {}
    for name, s in samples.items():
        f: dict[str, Any] = {
            "ttfc_c1": summary(s.ttfc_c1),
            "ttfc_cn": summary(s.ttfc_cn),
            "ttfc_cn_paced": summary(s.ttfc_cn_paced),
        }
        for key, q in ADDED:
            mine, base = getattr(s, f"ttfc_{key}"), getattr(direct, f"ttfc_{key}")
            f[f"added_{key}_p{q}"], f[f"added_{key}_p{q}_rounds"] = added(mine, base, q, rounds)
        f |= {
            "messages_per_s": median_of(s.fast, lambda r: r.messages / r.wall_s),
            "messages_per_chunk": sum(r.messages for r in s.fast) / sum(r.chunks for r in s.fast),
            "fast_busy": median_of(s.fast, lambda r: r.cpu_s / r.wall_s),
            "fast_waiting": median_of(s.fast, lambda r: r.wait_s / r.wall_s),
            "load_side_busy": median_of(s.fast, lambda r: r.load_side_cpu_s / r.wall_s),
        }
        if s.disconnect:
            f["disconnect"] = summary(s.disconnect)
        if name != DIRECT:
            f["cpu_fast"] = median_of(s.fast, lambda r: r.cpu_ms_per_1000)
            f["cpu_paced"] = median_of(s.paced, lambda r: r.cpu_ms_per_1000)
            f["cpu_per_request"] = sum(r.cpu_s for r in s.short) / sum(r.requests for r in s.short)
            c1 = s.short_c1
            f["cpu_per_request_c1"] = sum(r.cpu_s for r in c1) / sum(r.requests for r in c1)
        out[name] = f
    for f in out.values():
        f["throughput_share"] = f["messages_per_s"] / out[DIRECT]["messages_per_s"]
        if "cpu_fast" in f:
            f["cpu_fast_vs_nginx"] = f["cpu_fast"] / out[NGINX]["cpu_fast"]
            f["cpu_paced_vs_nginx"] = f["cpu_paced"] / out[NGINX]["cpu_paced"]
    return out


def figures_table(figs: dict[str, dict[str, Any]], plan: Plan) -> Table:
    names = list(figs)
    table = Table(["", *names])

    def row(label: str, cell: Callable[[dict[str, Any]], str], relays_only: bool = False) -> None:
        table.add(label, *("" if relays_only and n == DIRECT else cell(figs[n]) for n in names))

    n1, nn = plan.c1_requests * plan.rounds, plan.cn_requests * plan.rounds
    table.add(f"concurrency 1: {n1} requests x {plan.short_tokens} tokens per target")
    row("  TTFC p50", lambda f: ms(f["ttfc_c1"]["p50"]))
    row("  TTFC p99", lambda f: ms(f["ttfc_c1"]["p99"]))
    row("  added p50", lambda f: plus_ms(f["added_c1_p50"]), True)
    row("  added p99", lambda f: plus_ms(f["added_c1_p99"]), True)
    row("  added p99, median of rounds", lambda f: plus_ms(f["added_c1_p99_rounds"]), True)
    row("  relay CPU per request", lambda f: ms(f["cpu_per_request_c1"]), True)
    np = plan.cn_paced_requests * plan.rounds
    table.add(
        f"concurrency {plan.concurrency}, paced: {np} requests x {plan.cn_paced_tokens} tokens, "
        f"{plan.cn_paced_delay_ms:g} ms apart, streams started evenly spread"
    )
    row("  TTFC p50", lambda f: ms(f["ttfc_cn_paced"]["p50"]))
    row("  TTFC p99", lambda f: ms(f["ttfc_cn_paced"]["p99"]))
    row("  added p99", lambda f: plus_ms(f["added_cn_paced_p99"]), True)
    row("  added p99, median of rounds", lambda f: plus_ms(f["added_cn_paced_p99_rounds"]), True)
    table.add(
        f"concurrency {plan.concurrency}, back to back: {nn} requests x {plan.short_tokens} "
        "tokens, no delay"
    )
    row("  TTFC p50", lambda f: ms(f["ttfc_cn"]["p50"]))
    row("  TTFC p99", lambda f: ms(f["ttfc_cn"]["p99"]))
    row("  added p99", lambda f: plus_ms(f["added_cn_p99"]), True)
    row("  added p99, median of rounds", lambda f: plus_ms(f["added_cn_p99_rounds"]), True)
    row("  relay CPU per request (both)", lambda f: ms(f["cpu_per_request"]), True)
    table.add(f"{plan.streams} streams x {plan.fast_tokens} tokens, no delay (median of rounds)")
    row("  messages/s", lambda f: f"{f['messages_per_s']:,.0f}")
    row("  share of direct", lambda f: f"{f['throughput_share']:.0%}", True)
    row("  relay CPU per 1000 messages", lambda f: ms(f["cpu_fast"] / 1e3), True)
    row("    ratio to nginx", lambda f: f"x{f['cpu_fast_vs_nginx']:.2f}", True)
    row("  messages per chunk received", lambda f: f"{f['messages_per_chunk']:.1f}")
    row("  relay busy / waiting", lambda f: f"{f['fast_busy']:.0%} / {f['fast_waiting']:.0%}", True)
    row("  upstream + load generator busy", lambda f: f"{f['load_side_busy']:.0%}")
    table.add(
        f"{plan.streams} streams x {plan.paced_tokens} tokens, "
        f"{plan.paced_delay_ms:g} ms apart (median of rounds)"
    )
    row("  relay CPU per 1000 messages", lambda f: ms(f["cpu_paced"] / 1e3), True)
    row("    ratio to nginx", lambda f: f"x{f['cpu_paced_vs_nginx']:.2f}", True)
    table.add(
        f"hang up after {plan.disconnect_after} messages (beside {plan.background_streams} "
        f"streams, a token every {plan.background_delay_ms:g} ms) until the upstream sees it"
    )
    row("  p50", lambda f: ms(f["disconnect"]["p50"]) if "disconnect" in f else "")
    row("  p99", lambda f: ms(f["disconnect"]["p99"]) if "disconnect" in f else "")
    return table


@dataclass(frozen=True)
class Aim:
    label: str
    aim: str
    value: Callable[[dict[str, Any]], float]
    show: Callable[[float], str]
    met: Callable[[float], bool] | None  # None: stated, not judged
    judged: str = CORTEX  # the column the verdict is on


def aims() -> list[Aim]:
    def times(x: float) -> str:
        return f"x{x:.2f}"

    def share(x: float) -> str:
        return f"{x:.0%}"

    return [
        Aim("added TTFC p50, c=1", "≤ 0.5 ms", lambda f: f["added_c1_p50"], plus_ms,
            lambda x: x <= TTFC_P50_C1),
        Aim("added TTFC p99, c=1", "≤ 2 ms", lambda f: f["added_c1_p99"], plus_ms,
            lambda x: x <= TTFC_P99_C1),
        Aim("  the same, median of the rounds", "≤ 2 ms", lambda f: f["added_c1_p99_rounds"],
            plus_ms, lambda x: x <= TTFC_P99_C1),
        Aim("added TTFC p99, c=64 paced", "≤ 5 ms", lambda f: f["added_cn_paced_p99"],
            plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("  the same, median of the rounds", "≤ 5 ms",
            lambda f: f["added_cn_paced_p99_rounds"], plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("added TTFC p99, c=64 back to back", "≤ 5 ms", lambda f: f["added_cn_p99"],
            plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("  the same, median of the rounds", "≤ 5 ms", lambda f: f["added_cn_p99_rounds"],
            plus_ms, lambda x: x <= TTFC_P99_CN),
        Aim("CPU / 1000 chunks vs nginx, paced", "≤ x2", lambda f: f["cpu_paced_vs_nginx"],
            times, lambda x: x <= CPU_VS_NGINX),
        Aim("CPU / 1000 chunks vs nginx, no delay", "≤ x2", lambda f: f["cpu_fast_vs_nginx"],
            times, lambda x: x <= CPU_VS_NGINX),
        Aim("throughput, 64 fast streams, of direct", "≥ 50%", lambda f: f["throughput_share"],
            share, lambda x: x >= THROUGHPUT_SHARE),
        Aim("hang-up → upstream closed p99, loaded", "≤ 50 ms", lambda f: f["disconnect"]["p99"],
            ms, lambda x: x <= DISCONNECT_P99),
    ]  # fmt: skip


def lean_aims() -> list[Aim]:
    def times(x: float) -> str:
        return f"x{x:.2f}"

    return [
        Aim("added TTFC p50, c=1", "≤ 0.3 ms", lambda f: f["added_c1_p50"], plus_ms,
            lambda x: x <= LEAN_TTFC_P50_C1),
        Aim("CPU / 1000 paced chunks vs nginx", "≤ x1.5", lambda f: f["cpu_paced_vs_nginx"],
            times, lambda x: x <= LEAN_CPU_PACED),
        Aim("  the same, translated", "≤ x2", lambda f: f["cpu_paced_vs_nginx"], times,
            lambda x: x <= LEAN_CPU_PACED_TRANSLATED, judged=TRANSLATED),
        Aim("CPU per short request", "≤ 0.3 ms", lambda f: f["cpu_per_request"], ms,
            lambda x: x <= LEAN_CPU_PER_REQUEST),
        Aim("  the same, at c=1 alone", "≤ 0.3 ms", lambda f: f["cpu_per_request_c1"], ms,
            lambda x: x <= LEAN_CPU_PER_REQUEST),
        Aim("added TTFC p99, c=64 back to back", "≤ 20 ms", lambda f: f["added_cn_p99"],
            plus_ms, lambda x: x <= LEAN_BACK_TO_BACK_P99),
        Aim("hang-up → upstream closed p99, loaded", "≤ 5 ms", lambda f: f["disconnect"]["p99"],
            ms, lambda x: x <= LEAN_DISCONNECT_P99),
    ]  # fmt: skip


def aims_table(figs: dict[str, dict[str, Any]], issue: str = "#7") -> tuple[Table, dict[str, bool]]:
    table = Table([f"target (issue {issue})", "aim", *RELAYS, TRANSLATED, "verdict"])
    verdicts: dict[str, bool] = {}
    for aim in aims() if issue == "#7" else lean_aims():
        cells = []
        for name in (*RELAYS, TRANSLATED):
            try:
                cells.append(aim.show(aim.value(figs[name])))
            except KeyError:
                cells.append("")
        met = aim.met is not None and aim.met(aim.value(figs[aim.judged]))
        verdicts[aim.label] = met
        table.add(f"  {aim.label}", aim.aim, *cells, "met" if met else "MISSED")
    return table, verdicts


# ---- the plot -------------------------------------------------------------------------------


def plot(samples: dict[str, Samples], plan: Plan, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    n = plan.concurrency
    panels = (
        ("ttfc_c1", f"concurrency 1, {plan.short_tokens} tokens"),
        ("ttfc_cn_paced", f"concurrency {n}, {plan.cn_paced_tokens} tokens paced, starts spread"),
        ("ttfc_cn", f"concurrency {n}, {plan.short_tokens} tokens back to back"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for name, s in samples.items():
            values = sorted(x * 1e3 for x in getattr(s, key))
            heights = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, heights, where="post", label=name)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time to first chunk, ms (log scale)")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
    axes[0].set_ylabel("share of requests (ECDF)")
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- main -----------------------------------------------------------------------------------


def print_header(data: dict[str, Any], pinning: str) -> None:
    m = data["machine"]
    print(f"Córtex vs nginx vs hand-written relay ({data['mode']}), Córtex {m['cortex_source']}")
    print_machine(m)
    print(f"pinning: relays (nginx, Córtex, hand-written) as {pinning}")
    print("running...", flush=True)


async def measure(plan: Plan, report: Report) -> tuple[dict[str, Samples], list[str]]:
    pinning = choose_pinning()
    report.data["pinning"] = pinning.describe()
    print_header(report.data, pinning.describe())
    pinning.pin_load_generator()
    samples: dict[str, Samples] = {}
    with tempfile.TemporaryDirectory(prefix="cortex-compare-") as tmp:
        workdir = Path(tmp)
        async with processes(pinning) as procs:
            upstream, upstream_port = await start_upstream(procs)
            targets = await start_relays(procs, upstream_port, workdir, True, plan.before)
            samples = {t.name: Samples() for t in targets}
            noise = await relay_rounds(targets, plan, [upstream.pid, os.getpid()], samples)
            report.data["noise_per_round"] = noise
            logs = [line for t in targets for line in t.log_lines()]
            await procs.stop_all()
        async with processes(pinning) as procs:
            start = Snapshot.now()
            logs += await disconnect_rounds(procs, plan, workdir, samples)
            quiet = Snapshot.now().others_since(start)
            report.data["noise_disconnect"] = quiet
            print(
                f"  hang-ups: others used {quiet['others']:.0%} of the machine, "
                f"the hypervisor stole {quiet['steal']:.0%}",
                flush=True,
            )
    return samples, logs


async def main(plan: Plan, mode: str, plot_path: Path) -> int:
    cancel_on_sigterm()
    report = Report.begin(mode, plan)
    samples, logs = await measure(plan, report)
    figs = figures(samples, plan.rounds)
    report.tables += [figures_table(figs, plan), aims_table(figs)[0], aims_table(figs, "#17")[0]]
    report.data |= {"figures": figs, "samples": {n: asdict(s) for n, s in samples.items()}}
    report.finish(logs)
    json_path = write_results("compare", report.data)
    plot_path = plot_path if mode == "full" else json_path.with_name(f"{json_path.stem}-ttfc.png")
    plot(samples, plan, plot_path, "Time to first chunk: direct and through each relay")
    report.print_tables()
    report.print_notes()
    took = report.data["elapsed_s"]
    print(f"took {took:.0f} s; results in {json_path.relative_to(ROOT)}, plot in {plot_path}")
    return 0


def reprint(path: Path) -> None:
    """The tables of an earlier run, from its JSON."""
    data = orjson.loads(path.read_bytes())
    plan = Plan(**data["plan"])
    samples = {}
    for name, fields in data["samples"].items():
        runs = {k: [LoadRun(**r) for r in fields[k]] for k in ("short", "fast", "paced")}
        samples[name] = Samples(**(fields | runs))
    figs = figures(samples, plan.rounds)
    print(f"{path.name}: {data['mode']} run, noise per round {data.get('noise_per_round')}")
    print_table(figures_table(figs, plan))
    print_table(aims_table(figs)[0])
    print_table(aims_table(figs, "#17")[0])


def cli(argv: list[str] | None = None) -> None:
    command = parser(__doc__, "one small round, about a minute")
    command.add_argument("--plot", type=Path, default=PLOT, help="where a full run puts the plot")
    command.add_argument("--tables", type=Path, help="print the tables of a results JSON, and stop")
    command.add_argument(
        "--before", type=Path, help="an earlier Córtex's src/ (e.g. a git worktree's), measured too"
    )
    args = command.parse_args(argv)
    if args.tables:
        reprint(args.tables)
        return
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    if args.before:
        plan = replace(plan, before=str(args.before.resolve()))
    run_benchmark(main(plan, mode, args.plot), "the upstream and the relays")


if __name__ == "__main__":
    cli()
