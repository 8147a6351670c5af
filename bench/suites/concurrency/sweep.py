"""The concurrency sweep: paced answers over c kept-alive connections, c = 1 … 256, per
target, in interleaved rounds; time to first token, inter-token gaps and CPU per level."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harness.loadgen import chat_request
from harness.loads import warmed_load
from harness.machine import HOST
from harness.rounds import RoundNoise, interleaved

from suites.concurrency.added import pooled_gaps
from suites.concurrency.plan import Plan
from suites.concurrency.targets import Target


@dataclass
class Level:
    """One target at one concurrency, each list one entry (or sample list) a round."""

    ttfc: list[list[float]] = field(default_factory=list)
    gaps: list[list[float]] = field(default_factory=list)
    requests_per_s: list[float] = field(default_factory=list)
    cortex_busy: list[float] = field(default_factory=list)  # its CPU seconds / wall seconds
    cortex_waiting: list[float] = field(default_factory=list)  # runnable, waiting for a CPU
    cortex_cpu_per_request: list[float] = field(default_factory=list)
    load_busy: list[float] = field(default_factory=list)  # the upstream's and load generator's


Samples = dict[str, dict[int, Level]]


def requests_at(plan: Plan, concurrency: int) -> int:
    return max(plan.requests_c1, plan.requests_per_stream * concurrency)


async def level(
    target: Target, plan: Plan, concurrency: int, load_side: list[int], out: Level
) -> None:
    """``requests_at`` answers over ``concurrency`` connections whose first requests are
    spread over one answer's length, so requests arrive one by one, not in bursts."""
    request = chat_request(HOST, target.port, plan.tokens, plan.delay_ms, target.client, timed=True)
    stagger = plan.tokens * plan.delay_ms / 1e3 / concurrency
    pids = {f"cortex {p}": p for p in target.pids} | {f"load {p}": p for p in load_side}
    warmup = max(plan.warmup, concurrency)
    load = await warmed_load(
        target.port,
        request,
        warmup,
        requests_at(plan, concurrency),
        concurrency,
        pids,
        target.name,
        stagger,
    )
    cortex = sum(u["cpu_s"] for u in load.of("cortex"))
    out.ttfc.append([r.ttfc for r in load.results])
    out.gaps.append(pooled_gaps(r.arrivals for r in load.results))
    out.requests_per_s.append(len(load.results) / load.wall_s)
    out.cortex_busy.append(cortex / load.wall_s)
    out.cortex_waiting.append(sum(u["wait_s"] for u in load.of("cortex")) / load.wall_s)
    out.cortex_cpu_per_request.append(cortex / len(load.results))
    out.load_busy.append(sum(u["cpu_s"] for u in load.of("load")) / load.wall_s)


async def sweep(
    targets: list[Target], plan: Plan, load_side: list[int]
) -> tuple[Samples, list[dict[str, float]]]:
    """Every target at every level, levels in order within a round, targets interleaved
    (reversed every other round); the samples and each round's noise."""
    samples: Samples = {t.name: {c: Level() for c in plan.levels} for t in targets}
    noise = RoundNoise(plan.rounds)
    started = time.monotonic()
    for round_ in range(plan.rounds):
        noise.start()
        for concurrency in plan.levels:
            for target in interleaved(targets, round_):
                await level(target, plan, concurrency, load_side, samples[target.name][concurrency])
            took = time.monotonic() - started
            print(
                f"  round {round_ + 1}: concurrency {concurrency} done ({took:.0f} s)", flush=True
            )
        noise.end()
    return samples, noise.per_round
