"""The runs: the baseline straight at the fake upstream, then two waves through Córtex."""

from __future__ import annotations

import os
from typing import Any

from harness.cpu import family
from harness.processes import Gateway, Processes
from harness.servers import start_cortex, start_upstream

from suites.streams.plan import Plan
from suites.streams.wave import settled, wave


async def start_cortex_for(procs: Processes, upstream_port: int, plan: Plan) -> Gateway:
    """Córtex in front of the fake upstream, allowed a few more connections than the streams."""
    env = {"CORTEX_MAX_CONNECTIONS": str(max(10_000, plan.streams + plan.batch + 64))}
    extra = ["--workers", str(plan.workers)]
    return await start_cortex(procs, upstream_port, extra=extra, env=env)


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
