"""Scenarios (a) to (d): the Ollama path straight at the fake upstream and through Córtex."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from fake_upstream import serve
from harness.loadgen import chat_request, hangup_trial
from harness.loads import long_streams, warmed_load
from harness.machine import HOST
from harness.processes import Processes
from harness.servers import start_cortex
from harness.stats import summary

from suites.relay.plan import Plan

Stats = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Targets:
    direct: int  # port of the fake upstream
    via: int  # port of Córtex
    pids: dict[str, int]  # processes whose CPU is accounted

    def ports(self) -> tuple[tuple[str, int], ...]:
        return (("direct", self.direct), ("via", self.via))


async def latency(targets: Targets, plan: Plan, requests: int, concurrency: int) -> Stats:
    """(a), (b): short answers at one concurrency, straight and through Córtex."""
    out: Stats = {}
    for name, port in targets.ports():
        raw = chat_request(HOST, port, plan.short_tokens)
        warmup = max(plan.warmup, concurrency * 2)
        load = await warmed_load(port, raw, warmup, requests, concurrency, targets.pids, name)
        out[name] = {
            "ttfc": summary([r.ttfc for r in load.results]),
            "total": summary([r.total for r in load.results]),
            "requests_per_s": requests / load.wall_s,
            "wall_s": load.wall_s,
            "processes": load.used,
        }
    return out


async def throughput(targets: Targets, streams: int, tokens: int, delay_ms: float = 0) -> Stats:
    """(c), (c'): many long answers at once: lines per second, and which process spends
    the CPU."""
    out: Stats = {}
    for name, port in targets.ports():
        load = await long_streams(port, streams, tokens, delay_ms, targets.pids, name)
        lines = sum(r.messages for r in load.results)
        chunks = sum(r.chunks for r in load.results)
        out[name] = {
            "lines": lines,
            "chunks": chunks,
            "wall_s": load.wall_s,
            "processes": load.used,
        }
    return out


async def hangups_at(port: int, plan: Plan, hangups: asyncio.Queue[float]) -> list[float]:
    raw = chat_request(HOST, port, 100_000, plan.disconnect_delay_ms)
    lines = plan.disconnect_after_lines
    for _ in range(3):
        await hangup_trial(HOST, port, raw, lines, hangups)
    trials = range(plan.disconnect_trials)
    return [await hangup_trial(HOST, port, raw, lines, hangups) for _ in trials]


async def disconnects(procs: Processes, plan: Plan) -> tuple[Stats, list[str]]:
    """(d): the upstream runs in this event loop, so it times the hang-up on the same
    clock; a second Córtex relays to it."""
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
