"""A case: one workload under one rule, on fresh simulated servers and Córtex instances."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from harness.processes import Processes, free_port
from harness.servers import start_configured, start_redis
from harness.stats import percentile
from sim_upstream import SimServer

from suites.routing.clients import Record, drive
from suites.routing.cortex import backends_status, config, settle
from suites.routing.plan import Plan
from suites.routing.workloads import Workload


@dataclass
class Case:
    workload: str
    rule: str
    records: list[Record]
    servers: dict[str, dict[str, Any]]
    wall_s: float
    cortex_log: list[str] = field(default_factory=list)
    cortex_backends: list[Any] = field(default_factory=list)

    def ttfts(self) -> list[float]:
        return [r.ttft_s for r in self.records if r.ok and r.ttft_s is not None]

    def added(self) -> list[float]:
        return [r.added_s for r in self.records if r.ok and r.added_s is not None]

    def total(self, key: str) -> int:
        return sum(int(s[key]) for s in self.servers.values())

    def cached_share(self) -> float:
        prompt = self.total("prompt_tokens")
        return self.total("cached_tokens") / prompt if prompt else 0.0

    def same_backend_share(self) -> float:
        by_turn = {(r.chat, r.turn): r for r in self.records if r.ok}
        follow = [r for r in by_turn.values() if (r.chat, r.turn - 1) in by_turn]
        same = [r for r in follow if by_turn[(r.chat, r.turn - 1)].backend == r.backend]
        return len(same) / len(follow) if follow else 0.0

    def failed(self) -> list[Record]:
        return [r for r in self.records if not r.ok]

    def figures(self) -> dict[str, Any]:
        ttft = self.ttfts()
        return {
            "requests": len(self.records),
            "failed": len(self.failed()),
            "ttft_mean_ms": sum(ttft) / len(ttft) * 1e3 if ttft else None,
            "ttft_p50_ms": percentile(ttft, 50) * 1e3 if ttft else None,
            "ttft_p99_ms": percentile(ttft, 99) * 1e3 if ttft else None,
            "added_p50_ms": percentile(self.added(), 50) * 1e3 if self.added() else None,
            "added_p99_ms": percentile(self.added(), 99) * 1e3 if self.added() else None,
            "loads": self.total("loads"),
            "evictions": self.total("evictions"),
            "cached_share": self.cached_share(),
            "same_backend_share": self.same_backend_share(),
            "wall_s": self.wall_s,
        }


async def run_case(procs: Processes, plan: Plan, work: Workload, rule: str, dir: Path) -> Case:
    sims = [SimServer(spec) for spec in work.servers]
    ports = [await sim.start() for sim in sims]
    names = [spec.name for spec in work.servers]
    models = {m.name for spec in work.servers for m in spec.models}
    gateways = []
    redis = await start_redis(procs, None) if work.redis else None
    if work.redis and redis is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    redis_url = redis.url if redis is not None else None
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            listen = [free_port() for _ in range(work.instances)]
            apart = work.instances > 1 and redis_url is None  # as README advises: no balance
            toml = [config(rule, ports, names, plan, dir, p, redis_url, apart) for p in listen]
            starting = (
                start_configured(procs, t, p, dir) for t, p in zip(toml, listen, strict=True)
            )
            gateways = list(await asyncio.gather(*starting))
            await asyncio.gather(
                *(settle(session, g.port, models, plan.health_interval) for g in gateways)
            )
            started = time.perf_counter()
            records = await drive(session, work, [g.port for g in gateways])
            wall = time.perf_counter() - started
            status = [await backends_status(session, g.port) for g in gateways]
    finally:
        for gateway in gateways:
            await procs.stop(gateway.proc)
        for sim in sims:
            await sim.stop()
        if redis is not None:
            await procs.stop(redis.proc)
    log = [line for g in gateways for line in g.log_lines()]
    stats = {sim.spec.name: {**asdict(sim.stats), "in_memory": list(sim.runners)} for sim in sims}
    return Case(work.name, rule, records, stats, wall, log, status)
