"""The loads, per target in interleaved rounds: TTFC at 1 and at many, CPU and throughput."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.loadgen import ChatRequest, Result, chat_request
from harness.loads import Measured, long_streams, warmed_load
from harness.machine import HOST
from harness.rounds import RoundNoise, Run, interleaved

from suites.compare.plan import Plan
from suites.compare.targets import Target


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


def pids_of(target: Target, load_side: list[int]) -> dict[str, int]:
    pids = {f"relay {pid}": pid for pid in target.pids}
    return pids | {f"load {pid}": pid for pid in load_side}


def load_run(load: Measured) -> LoadRun:
    load_cpu = sum(float(u["cpu_s"]) for u in load.of("load"))
    return LoadRun.of(load.results, load.wall_s, load.of("relay"), load_side_cpu_s=load_cpu)


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
    request: ChatRequest = chat_request(HOST, target.port, tokens, delay)
    warmup = max(plan.warmup, 2 * concurrency)
    pids = pids_of(target, load_side)
    load = await warmed_load(
        target.port, request, warmup, requests, concurrency, pids, target.name, stagger
    )
    results: list[Result] = load.results
    return [r.ttfc for r in results], load_run(load)


async def streams(
    target: Target, plan: Plan, tokens: int, delay_ms: float, load_side: list[int]
) -> LoadRun:
    pids = pids_of(target, load_side)
    n = plan.streams
    return load_run(await long_streams(target.port, n, tokens, delay_ms, pids, target.name))


async def relay_rounds(
    targets: list[Target], plan: Plan, load_side: list[int], out: dict[str, Samples]
) -> list[dict[str, float]]:
    """TTFC at 1 and many streams, then CPU and throughput, in interleaved rounds (order
    reversed every other round) so drift hits every target alike. Returns each round's
    share of the machine used by others and stolen."""
    noise = RoundNoise(plan.rounds)
    for round_ in range(plan.rounds):
        noise.start()
        order = interleaved(targets, round_)
        for t in order:
            c1, run_ = await latency(t, plan, 1, plan.c1_requests, load_side)
            out[t.name].ttfc_c1 += c1
            out[t.name].short.append(run_)
            out[t.name].short_c1.append(run_)
        for t in order:
            cn, run_ = await latency(t, plan, plan.concurrency, plan.cn_requests, load_side)
            out[t.name].ttfc_cn += cn
            out[t.name].short.append(run_)
        for t in order:
            n, requests = plan.concurrency, plan.cn_paced_requests
            cn, _ = await latency(t, plan, n, requests, load_side, paced=True)
            out[t.name].ttfc_cn_paced += cn
        for t in order:
            out[t.name].fast.append(await streams(t, plan, plan.fast_tokens, 0, load_side))
        for t in order:
            paced = await streams(t, plan, plan.paced_tokens, plan.paced_delay_ms, load_side)
            out[t.name].paced.append(paced)
        noise.end()
    return noise.per_round
