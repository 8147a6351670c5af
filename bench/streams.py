"""Many open streams: N slow streams at once, straight at the fake upstream and through Córtex.

    .venv/bin/python bench/streams.py [--streams 10000] [--quick] [--delay-ms 50] [--workers 2]

Starts the fake upstream (bench/fake_upstream.py) and ``cortex serve`` as
subprocesses, pinned as bench/relay.py pins them, raises the open-file limit,
then opens N streams of ``--tokens`` tokens, a token every ``--delay-ms``, in
batches (each batch waits for its first tokens, so no accept queue overflows),
checks that each one brings every token in order and ends with its done line,
and samples the memory (RSS, PSS, USS from /proc/PID/smaps_rollup) and CPU of
the processes serving them. The baseline is the same wave straight at the fake
upstream. Through Córtex it runs two identical waves: memory after the second
should equal memory after the first (the leak check). Writes JSON to bench/results/.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness import (
    HOST,
    ROOT,
    Cortex,
    CpuClock,
    Processes,
    choose_pinning,
    cpu_of,
    family,
    processes,
    start_cortex,
    start_upstream,
    summary,
)
from loadgen import ChatRequest, Result, StreamConnection, chat_request
from report import (
    Table,
    cancel_on_sigterm,
    facts,
    parser,
    print_table,
    quick_or_full,
    run_benchmark,
    write_results,
)

KB = 1000
TARGET_PER_STREAM = 50 * KB  # bytes of resident memory per open stream (issue #7)
SAMPLE_EVERY = 0.25  # seconds between memory samples during a wave
FD_SPARE = 400  # open files a Córtex process needs besides two per stream (a guess with room)


@dataclass(frozen=True)
class Plan:
    streams: int = 10_000
    tokens: int = 60
    delay_ms: float = 1000  # see the README: 10,000 x 20 tokens/s is past this machine
    batch: int = 500  # connections opened at once while ramping up
    warmup: int = 200  # streams of a short wave before the idle figure
    batch_wait_s: float = 10.0  # at most, for a batch's first tokens before the next batch
    settle_s: float = 3.0  # wait before measuring at rest
    pool_expiry_s: float = 65.0  # after a wave through Córtex: its idle upstream connections
    # stay open 30 to 60 s (aiohttp keep-alive); the figures after a wave wait until they closed
    workers: int = 0  # 0: the fewest Córtex processes whose open files fit the limit


QUICK = Plan(streams=1000, tokens=100, delay_ms=50, batch=250, warmup=50, settle_s=2.0)


# ---- memory and processes ------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss: int
    pss: int
    uss: int
    fds: int

    def minus(self, other: Memory) -> Memory:
        return Memory(
            self.rss - other.rss, self.pss - other.pss, self.uss - other.uss, self.fds - other.fds
        )


def memory_of(pids: list[int]) -> Memory:
    rss = pss = uss = fds = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _smaps_rollup(pid)
            rss += fields.get("Rss", 0)
            pss += fields.get("Pss", 0)
            uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
            fds += len(os.listdir(f"/proc/{pid}/fd"))
    return Memory(rss, pss, uss, fds)


def _smaps_rollup(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def raise_open_files(streams: int) -> tuple[int, int]:
    """Enough descriptors for every socket of every process (they inherit the limit); the
    hard limit rises only for a process allowed to (CAP_SYS_RESOURCE)."""
    need = 4 * streams + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, min(need, nr_open))))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(need, hard)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fewest_workers(plan: Plan, limit: int) -> int:
    return next(w for w in range(1, 64) if 2 * plan.streams // w + FD_SPARE <= limit)


def descriptors_short(plan: Plan, limit: int) -> str:
    """Why this plan cannot run under the open-file limit, or nothing: each Córtex process
    holds a client and an upstream socket per stream it serves."""
    per_process = 2 * plan.streams // plan.workers + FD_SPARE
    if per_process <= limit:
        return ""
    fits = (limit - FD_SPARE) // 2 * plan.workers
    return (
        f"{plan.streams} streams need about {per_process} open files per Córtex process, "
        f"over the limit of {limit} (the hard limit, which only a process with "
        f"CAP_SYS_RESOURCE can raise): use --streams {fits} or more --workers"
    )


def listen_drops() -> int:
    """Connections the kernel dropped machine-wide because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    names, values = next(
        (a.split(), b.split())
        for a, b in itertools.pairwise(lines)
        if a.startswith("TcpExt:") and b.startswith("TcpExt:")
    )
    return int(values[names.index("ListenDrops")])


def kernel_settings() -> dict[str, str]:
    names = ["net/core/somaxconn", "net/ipv4/tcp_max_syn_backlog", "net/ipv4/ip_local_port_range"]
    return {name: Path("/proc/sys", name).read_text().strip() for name in names}


# ---- one stream ----------------------------------------------------------------------------


class CheckedStream(StreamConnection):
    """A stream whose every token must arrive, in order, before the done line."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = 0
        self.problem = ""
        self.first_token = 0.0
        self.last_token = 0.0
        self._line = b""

    def _body(self, data: bytes, now: float) -> None:
        lines = (self._line + data).split(b"\n")
        self._line = lines.pop()
        for line in lines:
            self._check(line, now)
        super()._body(data, now)

    def _check(self, line: bytes, now: float) -> None:
        if self.problem:
            return
        if b'"error"' in line:
            self.problem = f"error line: {line[:200]!r}"
        elif b'"done":true' in line:
            return
        elif b'"content":"tok%d "' % self.tokens in line:
            self.tokens += 1
            self.first_token = self.first_token or now
            self.last_token = now
        else:
            self.problem = f"token {self.tokens} expected, got {line[:200]!r}"

    def start(self, request: ChatRequest) -> asyncio.Future[Result]:
        """Send the request; its result, and the ``started`` future set by the first message."""
        loop = asyncio.get_running_loop()
        self._want, self._enough = 1, loop.create_future()
        return self._send(request)

    @property
    def started(self) -> asyncio.Future[None]:
        assert self._enough is not None
        return self._enough


@dataclass(frozen=True)
class Stream:
    result: Result
    tokens: int
    problem: str
    token_rate: float  # tokens per second between its first and last token


def judged(conn: CheckedStream, result: Result, tokens: int) -> Stream:
    problem = result.error or conn.problem
    if not problem and conn.tokens != tokens:
        problem = f"{conn.tokens} tokens of {tokens}"
    span = conn.last_token - conn.first_token
    rate = (conn.tokens - 1) / span if span > 0 else 0.0
    return Stream(result, conn.tokens, problem, rate)


# ---- one wave ------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    open: int
    memory: Memory


@dataclass
class Wave:
    streams: list[Stream]
    samples: list[Sample]
    wall_s: float
    ramp_s: float
    cpu_s: dict[str, float]
    listen_drops: int

    @property
    def max_open(self) -> int:
        return max((s.open for s in self.samples), default=0)

    def plateau(self) -> Sample:
        """The highest memory sampled while every stream was open (else at the most open)."""
        most = [s for s in self.samples if s.open == self.max_open]
        return max(most, key=lambda s: s.memory.rss)

    def per_stream(self, idle: Memory) -> Memory:
        top = self.plateau()
        grown = top.memory.minus(idle)
        n = max(top.open, 1)
        return Memory(grown.rss // n, grown.pss // n, grown.uss // n, grown.fds // n)

    def failures(self) -> list[str]:
        return [s.problem for s in self.streams if s.problem]


class OpenCount:
    def __init__(self) -> None:
        self.open = 0


def one_stream(
    conn: CheckedStream, request: ChatRequest, open_now: OpenCount
) -> asyncio.Future[Result]:
    """Start a stream; it counts as open from its first message until its end."""
    result = conn.start(request)

    def opened(_: object) -> None:
        open_now.open += 1
        result.add_done_callback(lambda _: setattr(open_now, "open", open_now.open - 1))

    conn.started.add_done_callback(opened)
    return result


async def sampler(
    measured: list[int], open_now: OpenCount, samples: list[Sample], started: float
) -> None:
    while True:
        memory = await asyncio.to_thread(memory_of, measured)
        samples.append(Sample(time.monotonic() - started, open_now.open, memory))
        await asyncio.sleep(SAMPLE_EVERY)


async def wave(
    port: int, plan: Plan, streams: int, tokens: int, measured: list[int], cpu: dict[str, list[int]]
) -> Wave:
    """``streams`` streams at once against ``port``, opened in batches; memory of ``measured``."""
    request = chat_request(HOST, port, tokens, plan.delay_ms)
    open_now, samples = OpenCount(), []
    started = time.monotonic()
    cpu_before = {name: cpu_of(pids) for name, pids in cpu.items()}
    drops = listen_drops()
    watching = asyncio.create_task(sampler(measured, open_now, samples, started))
    pending: list[tuple[CheckedStream, asyncio.Future[Result]]] = []
    try:
        for first in range(0, streams, plan.batch):
            count = min(plan.batch, streams - first)
            conns = await asyncio.gather(*(CheckedStream.open(HOST, port) for _ in range(count)))
            pending += [(c, one_stream(c, request, open_now)) for c in conns]
            await asyncio.wait([c.started for c in conns], timeout=plan.batch_wait_s)
        ramp = time.monotonic() - started
        results = [await result for _, result in pending]
        wall = time.monotonic() - started
        cpu_used = {name: cpu_of(pids) - cpu_before[name] for name, pids in cpu.items()}
        await asyncio.sleep(SAMPLE_EVERY)
    finally:
        watching.cancel()
        for conn, _ in pending:
            conn.close()
    checked = [judged(c, r, tokens) for (c, _), r in zip(pending, results, strict=True)]
    return Wave(checked, samples, wall, ramp, cpu_used, listen_drops() - drops)


async def settled(measured: list[int], seconds: float) -> Memory:
    await asyncio.sleep(seconds)
    return memory_of(measured)


# ---- the runs ------------------------------------------------------------------------------


async def start_cortex_for(procs: Processes, upstream_port: int, plan: Plan) -> Cortex:
    """Córtex in front of the fake upstream, allowed a few more connections than the streams."""
    os.environ["CORTEX_MAX_CONNECTIONS"] = str(max(10_000, plan.streams + plan.batch + 64))
    return await start_cortex(procs, upstream_port, extra=["--workers", str(plan.workers)])


async def direct(procs: Processes, plan: Plan) -> dict[str, Any]:
    """The baseline: the streams straight at a fake upstream of their own."""
    upstream, port = await start_upstream(procs)
    pids = [upstream.pid]
    try:
        await wave(port, plan, plan.warmup, 5, pids, {})
        idle = await settled(pids, plan.settle_s)
        cpu = {"upstream": pids, "load generator": [os.getpid()]}
        one = await wave(port, plan, plan.streams, plan.tokens, pids, cpu)
        after = await settled(pids, plan.settle_s)
    finally:
        await procs.stop(upstream)
    return {"idle": idle, "wave": one, "after": after}


async def via_cortex(procs: Processes, plan: Plan) -> dict[str, Any]:
    upstream, upstream_port = await start_upstream(procs)
    cortex = await start_cortex_for(procs, upstream_port, plan)
    out: dict[str, Any] = {}
    try:
        await wave(cortex.port, plan, plan.warmup, 5, [cortex.proc.pid], {})
        pids = family(cortex.proc.pid)  # with its workers, up by now
        cpu = {"cortex": pids, "upstream": [upstream.pid], "load generator": [os.getpid()]}
        out["processes"] = len(pids)
        out["idle"] = await settled(pids, plan.settle_s)
        out["wave1"] = await wave(cortex.port, plan, plan.streams, plan.tokens, pids, cpu)
        out["after1"] = await settled(pids, plan.pool_expiry_s)
        out["wave2"] = await wave(cortex.port, plan, plan.streams, plan.tokens, pids, cpu)
        out["after2"] = await settled(pids, plan.pool_expiry_s)
    finally:
        await procs.stop(cortex.proc)
        await procs.stop(upstream)
        out["log"] = cortex.log_lines()
    return out


# ---- the report ----------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def kb(n: float) -> str:
    return f"{n / KB:.1f} KB"


def rates(w: Wave) -> dict[str, Any]:
    return summary([s.token_rate for s in w.streams if s.token_rate > 0])


def wave_rows(w: Wave) -> dict[str, str]:
    ok = len(w.streams) - len(w.failures())
    rate = rates(w)
    messages = sum(s.result.messages for s in w.streams)
    ttfc = summary([s.result.ttfc for s in w.streams if s.result.ok])
    return {
        "complete and intact": f"{ok}/{len(w.streams)}",
        "most open at once": str(w.max_open),
        "connections dropped, accept queue full": str(w.listen_drops),
        "ramp-up / whole wave": f"{w.ramp_s:.1f} s / {w.wall_s:.1f} s",
        "tokens/s per stream p50 (p10..p90)": (
            f"{rate['p50']:.1f} ({rate['min']:.1f}..{rate['p90']:.1f})" if rate["n"] else "-"
        ),
        "messages/s delivered, all streams": f"{messages / w.wall_s:,.0f}",
        "first token p50 / p99": (
            f"{ttfc['p50'] * 1e3:.0f} / {ttfc['p99'] * 1e3:.0f} ms" if ttfc["n"] else "-"
        ),
    }


def memory_rows(idle: Memory, w: Wave, after: Memory, streams: int) -> dict[str, str]:
    top = w.plateau().memory
    per = w.per_stream(idle)
    return {
        "RSS idle / all open / after": f"{mib(idle.rss)} / {mib(top.rss)} / {mib(after.rss)}",
        "USS idle / all open / after": f"{mib(idle.uss)} / {mib(top.uss)} / {mib(after.uss)}",
        "PSS idle / all open / after": f"{mib(idle.pss)} / {mib(top.pss)} / {mib(after.pss)}",
        "per open stream: RSS (USS, PSS)": (f"{kb(per.rss)} ({kb(per.uss)}, {kb(per.pss)})"),
        "open files idle / all open / after": f"{idle.fds} / {top.fds} / {after.fds}",
    }


def cpu_rows(w: Wave) -> dict[str, str]:
    return {f"CPU {name} (share of one CPU)": f"{s / w.wall_s:.0%}" for name, s in w.cpu_s.items()}


def print_report(
    plan: Plan, data: dict[str, Any], base: dict[str, Any], via: dict[str, Any]
) -> None:
    m = data["machine"]
    print(f"Many open streams ({data['mode']}), Córtex from {m['cortex_source']}")
    print(f"machine: {m['nproc']} CPUs usable, {m['cpu_model']}; python {m['python']}")
    print(f"pinning: {data['pinning']}; Córtex workers: {plan.workers}")
    print(f"open files limit {data['nofile']}; {data['kernel']}")
    rate = 1000 / plan.delay_ms
    print(
        f"{plan.streams} streams x {plan.tokens} tokens, a token every {plan.delay_ms:g} ms "
        f"({rate:g} tokens/s asked), opened {plan.batch} at a time"
    )
    n = plan.streams
    columns = {
        "direct (fake upstream)": (base["idle"], base["wave"], base["after"]),
        "via Córtex, wave 1": (via["idle"], via["wave1"], via["after1"]),
        "via Córtex, wave 2": (via["idle"], via["wave2"], via["after2"]),
    }
    cells = {
        name: wave_rows(w) | memory_rows(idle, w, after, n) | cpu_rows(w)
        for name, (idle, w, after) in columns.items()
    }
    table = Table(["", *cells])
    for label in dict.fromkeys(label for c in cells.values() for label in c):
        table.add(label, *(c.get(label, "-") for c in cells.values()))
    print_table(table)
    for line in verdicts(plan, base, via):
        print(line)


def verdicts(plan: Plan, base: dict[str, Any], via: dict[str, Any]) -> list[str]:
    n = plan.streams
    per = via["wave1"].per_stream(via["idle"]).rss
    fake = base["wave"].per_stream(base["idle"]).rss
    leak = via["after2"].minus(via["after1"])
    peaks = via["wave2"].plateau().memory.rss - via["wave1"].plateau().memory.rss
    broken = len(via["wave1"].failures()) + len(via["wave2"].failures())
    asked = 1000 / plan.delay_ms
    got = rates(via["wave1"]).get("p50", 0.0)
    lines = [
        f"per open stream: Córtex {kb(per)} RSS, x{per / fake:.1f} the fake upstream's {kb(fake)}; "
        f"{per / TARGET_PER_STREAM:.0%} of the {kb(TARGET_PER_STREAM)} target: "
        + ("MET" if per <= TARGET_PER_STREAM else "MISSED"),
        f"streams complete and intact: {2 * n - broken}/{2 * n} through Córtex: "
        + ("MET" if not broken else "MISSED"),
        f"leak check, after wave 2 - after wave 1: RSS {leak.rss / 2**20:+.1f} MiB "
        f"({leak.rss / n:+.0f} B per stream), USS {leak.uss / 2**20:+.1f} MiB, "
        f"open files {leak.fds:+d}; all open, wave 2 - wave 1: RSS {peaks / 2**20:+.1f} MiB "
        "(RSS after a wave also moves with what the allocators give back)",
        f"token rate per stream p50 {got:.1f}/s of the {asked:g}/s asked: "
        + ("MET" if got >= 0.95 * asked else "MISSED"),
    ]
    for name, w in (("direct", base["wave"]), ("wave 1", via["wave1"]), ("wave 2", via["wave2"])):
        for problem in sorted(set(w.failures()))[:3]:
            lines.append(f"{name}: {problem}")
    return lines


def to_json(value: Any) -> Any:
    if isinstance(value, Wave):
        return {
            "streams": len(value.streams),
            "failures": value.failures()[:20],
            "max_open": value.max_open,
            "ramp_s": value.ramp_s,
            "wall_s": value.wall_s,
            "cpu_s": value.cpu_s,
            "listen_drops": value.listen_drops,
            "plateau": asdict(value.plateau().memory),
            "plateau_open": value.plateau().open,
            "token_rate": rates(value),
            "ttfc": summary([s.result.ttfc for s in value.streams if s.result.ok]),
            "samples": [[s.t, s.open, s.memory.rss, s.memory.uss] for s in value.samples],
        }
    if isinstance(value, Memory):
        return asdict(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


# ---- main ----------------------------------------------------------------------------------


async def main(plan: Plan, mode: str) -> int:
    cancel_on_sigterm()
    started, clock = time.monotonic(), CpuClock.now()
    pinning = choose_pinning()
    data = facts(mode, plan)
    data |= {"pinning": pinning.describe(), "nofile": raise_open_files(plan.streams)}
    data["kernel"] = kernel_settings()
    if not plan.workers:
        plan = replace(plan, workers=fewest_workers(plan, data["nofile"][0]))
        data["plan"] = asdict(plan)
    short = descriptors_short(plan, data["nofile"][0])
    if short:
        print(f"cannot run: {short}", file=sys.stderr)
        return 2
    pinning.pin_load_generator()
    async with processes(pinning) as procs:
        base = await direct(procs, plan)
        via = await via_cortex(procs, plan)
    elapsed = time.monotonic() - started
    data |= {"direct": base, "via": via, "elapsed_s": elapsed}
    data["machine_cpu_not_ours"] = CpuClock.now().others_since(clock, elapsed)
    print_report(plan, data, base, via)
    others = data["machine_cpu_not_ours"]
    print(f"others used {others['others']:.0%} of the machine's CPU, steal {others['steal']:.0%}")
    if via["log"]:
        print(f"Córtex logged {len(via['log'])} line(s), the first: {via['log'][0]}")
    path = write_results("streams", to_json(data))
    print(f"took {elapsed:.0f} s; results in {path.relative_to(ROOT)}")
    broken = via["wave1"].failures() or via["wave2"].failures()
    return 1 if broken else 0


def cli(argv: list[str] | None = None) -> None:
    command = parser(__doc__, "1000 streams, a token every 50 ms, about 3 minutes")
    command.add_argument("--streams", type=int)
    command.add_argument("--tokens", type=int)
    command.add_argument("--delay-ms", type=float)
    command.add_argument("--workers", type=int)
    args = command.parse_args(argv)
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    given = {
        "streams": args.streams,
        "tokens": args.tokens,
        "delay_ms": args.delay_ms,
        "workers": args.workers,
    }
    plan = replace(plan, **{k: v for k, v in given.items() if v is not None})
    run_benchmark(main(plan, mode), "the upstream and Córtex")


if __name__ == "__main__":
    cli()
