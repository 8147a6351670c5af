"""Client hang-up under load: read a few messages, hang up, time until the upstream sees it,
while other streams run through the same relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fake_upstream import serve
from harness.loadgen import Result, StreamConnection, chat_request, hangup_trial
from harness.machine import HOST
from harness.processes import Processes
from harness.rounds import interleaved

from suites.compare.loads import Samples
from suites.compare.plan import Plan
from suites.compare.targets import Target, start_relays


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
            for t in interleaved(targets, round_):
                trials = plan.disconnect_trials
                out[t.name].disconnect += await hangups_under_load(t, plan, hangups, trials)
        return [line for t in targets for line in t.log_lines()]
    finally:
        await procs.stop_all()
        server.close()
