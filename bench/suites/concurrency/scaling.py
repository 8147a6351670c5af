"""``--workers``: 10-token answers back to back over many connections, enough to keep one
worker busy, through one worker (pinned) and through two (on both CPUs).

On a machine of two CPUs the load generator and the fake upstream need one of them, so
two workers cannot show twice the wall throughput here. What does carry over is each
worker's CPU per request and how evenly the requests were spread: with N free cores,
N workers carry N / (CPU per request) requests a second if the cost per request stays
as it is with one and no worker idles while another queues. The figure below is that
estimate, beside the wall throughput measured (and the load side's share)."""

from __future__ import annotations

import statistics
from typing import Any

from harness.cpu import cpu_seconds
from harness.loadgen import chat_request
from harness.loads import warmed_load
from harness.machine import HOST
from harness.rounds import interleaved

from suites.concurrency.plan import Plan
from suites.concurrency.targets import Target


async def saturate(target: Target, plan: Plan, load_side: list[int]) -> dict[str, Any]:
    request = chat_request(HOST, target.port, 10, 0, target.client)
    processes = list(target.pids)
    workers = processes[1:] if len(processes) > 1 else processes
    pids = {f"cortex {p}": p for p in processes} | {f"load {p}": p for p in load_side}
    before = {p: cpu_seconds(p) for p in workers}
    c = plan.saturation_concurrency
    load = await warmed_load(
        target.port, request, 2 * c, plan.saturation_requests, c, pids, target.name
    )
    used = [cpu_seconds(p) - before[p] for p in workers]
    # the workers: the processes that served (uvicorn's supervisor and helpers barely run)
    per_worker = [u for u in used if u > 0.05 * sum(used)]
    cpu = sum(u["cpu_s"] for u in load.of("cortex"))
    requests = len(load.results)
    return {
        "requests_per_s": requests / load.wall_s,
        "cpu_ms_per_request": cpu / requests * 1e3,
        "worker_cpu_share": [w / sum(per_worker) for w in per_worker],
        "cortex_busy": cpu / load.wall_s,
        "load_busy": sum(u["cpu_s"] for u in load.of("load")) / load.wall_s,
    }


def estimate(one: dict[str, Any], two: dict[str, Any]) -> dict[str, float]:
    """Two workers against one: wall throughput measured, and the throughput two workers
    would carry on two free cores from the CPU per request and the spread (the busiest
    worker bounds it)."""
    cpu_ratio = one["cpu_ms_per_request"] / two["cpu_ms_per_request"]
    busiest = two.get("busiest_share") or max(two["worker_cpu_share"])
    spread = 1 / (len(two["worker_cpu_share"]) * busiest)
    return {
        "wall": two["requests_per_s"] / one["requests_per_s"],
        "cpu_per_request_ratio": cpu_ratio,
        "spread": spread,
        "estimated": 2 * cpu_ratio * spread,
    }


def over_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds, the busiest worker's share in each round
    (a mean of the shares by worker would hide a different worker being the busy one in
    each round) and its median."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in FIGURES}
    shares = [
        r["worker_cpu_share"]
        for r in runs
        if len(r["worker_cpu_share"]) == len(runs[0]["worker_cpu_share"])
    ]
    out["worker_cpu_share"] = [statistics.mean(s) for s in zip(*shares, strict=True)]
    out["busiest_per_round"] = [max(s) for s in shares]
    out["busiest_share"] = statistics.median(out["busiest_per_round"])
    out["rounds"] = runs
    return out


FIGURES = ("requests_per_s", "cpu_ms_per_request", "cortex_busy", "load_busy")


async def scaling(one: Target, two: Target, plan: Plan, load_side: list[int]) -> dict[str, Any]:
    """One worker and two, interleaved over the plan's rounds."""
    runs: dict[str, list[dict[str, Any]]] = {one.name: [], two.name: []}
    for round_ in range(plan.rounds):
        for target in interleaved([one, two], round_):
            runs[target.name].append(await saturate(target, plan, load_side))
    first, second = over_rounds(runs[one.name]), over_rounds(runs[two.name])
    return {"1 worker": first, "2 workers": second, "scaling": estimate(first, second)}
