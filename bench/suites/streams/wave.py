"""A wave: N streams opened in batches, checked, with the memory of the processes serving
them sampled meanwhile."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from harness.cpu import cpu_of
from harness.loadgen import ChatRequest, Result, chat_request
from harness.machine import HOST
from harness.memory import Memory, memory_of

from suites.streams.checked import CheckedStream, Stream, judged
from suites.streams.limits import listen_drops
from suites.streams.plan import SAMPLE_EVERY, Plan


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
