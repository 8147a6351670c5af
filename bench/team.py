"""What running Córtex for a team costs: API keys, per-key limits, metrics and access logs.

    .venv/bin/python bench/team.py [--quick]

One fake upstream and four ``cortex serve`` subprocesses on Córtex's CPU, each
started with its own TOML file; only one is loaded at a time:

- ``bare``: the core relay, with ``metrics = false`` and ``access_log = false``;
- ``observed``: the defaults, metrics and one access-log line per request (to a file);
- ``keys, memory``: ``observed`` plus a required API key with every limit set (requests
  per minute, concurrent streams, tokens per day), counted in memory;
- ``keys, Redis``: the same, limits and usage kept in a redis-server started here
  (on the load generator's CPU; its CPU is reported apart).

Two loads in interleaved rounds (reversed every other round): 10-token answers one
at a time (CPU per request, added TTFC), and 64 streams of 200 tokens paced a token
every 5 ms, as a model generates (CPU per 1000 chunks). Every figure is also a
ratio to ``bare``, measured in the same run. Writes JSON to bench/results/.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cli import parser, run
from harness.cpu import Snapshot
from harness.loadgen import chat_request
from harness.loads import measured_load, warm_up
from harness.machine import HERE, HOST, machine
from harness.pinning import choose_pinning
from harness.processes import processes
from harness.results import write_results
from harness.rounds import interleaved
from harness.servers import start_cortex, start_redis, start_upstream
from harness.stats import summary
from harness.tables import Table, ms, plus_ms, print_table, ratio

from cortex.access.keys import generate_key, hash_key

LIMITED_KEY = "rpm = 1000000\nconcurrent = 1000\ntokens_per_day = 1000000000000\n"


@dataclass(frozen=True)
class Plan:
    rounds: int = 3
    sequential: int = 300
    warmup: int = 30
    streams: int = 64
    tokens: int = 200
    delay_ms: float = 5
    short_tokens: int = 10


QUICK = Plan(rounds=1, sequential=100, tokens=100)


@dataclass(frozen=True)
class Variant:
    name: str
    toml: str
    keyed: bool


def variants(key: str, redis_port: int | None, work: Path) -> list[Variant]:
    keys_file = work / "keys.json"
    keyed = (
        f'keys_file = "{keys_file}"\nrequire_keys = true\n'
        f'[[keys]]\nname = "bench"\nkey_hash = "{hash_key(key)}"\n{LIMITED_KEY}'
    )
    out = [
        Variant("bare", "metrics = false\naccess_log = false\n", False),
        Variant("observed", "", False),
        Variant("keys, memory", keyed, True),
    ]
    if redis_port is not None:
        redis = f'redis_url = "redis://{HOST}:{redis_port}/0"\n'
        out.append(Variant("keys, Redis", redis + keyed, True))
    return out


async def measure(plan: Plan) -> dict[str, Any]:
    pinning = choose_pinning()
    key = generate_key()
    with tempfile.TemporaryDirectory(prefix="cortex-team-") as tmp:
        work = Path(tmp)
        async with processes(pinning) as procs:
            upstream, upstream_port = await start_upstream(procs)
            redis = await start_redis(procs, pinning.load)
            pids = {"upstream": upstream.pid, "load generator": os.getpid()}
            if redis is not None:
                pids["redis"] = redis.proc.pid
            started: dict[str, tuple[int, int]] = {}
            chosen = variants(key, redis.port if redis else None, work)
            for v in chosen:
                config = work / f"{v.name.replace(', ', '-')}.toml"
                config.write_text(v.toml)
                extra = ["--config", str(config), "--log-level", "info"]
                cortex = await start_cortex(procs, upstream_port, extra=extra)
                started[v.name] = (cortex.port, cortex.proc.pid)
            start = Snapshot.now()
            runs = await rounds(plan, chosen, started, pids, key)
            noise = Snapshot.now().others_since(start)
    return {
        "noise": noise,
        "machine": machine(),
        "pinning": pinning.describe(),
        "plan": plan.__dict__,
        "redis": redis is not None,
        "variants": runs,
    }


async def rounds(
    plan: Plan,
    chosen: list[Variant],
    started: dict[str, tuple[int, int]],
    pids: dict[str, int],
    key: str,
) -> dict[str, Any]:
    samples: dict[str, dict[str, list[Any]]] = {
        v.name: {"ttfc": [], "per_request": [], "per_1000": [], "redis_per_1000": []}
        for v in chosen
    }

    async def load(
        v: Variant, tokens: int, delay: float, n: int, c: int, warmup: int = 0
    ) -> tuple[Any, Any]:
        port, pid = started[v.name]
        headers = {"Authorization": f"Bearer {key}"} if v.keyed else None
        request = chat_request(HOST, port, tokens, delay, headers=headers)
        if warmup:
            await warm_up(port, request, warmup, c, v.name)
        load = await measured_load(port, request, n, c, {"cortex": pid, **pids}, v.name)
        return load.results, load.used

    for round_ in range(plan.rounds):
        order = interleaved(chosen, round_)
        for v in order:
            results, used = await load(v, plan.short_tokens, 0, plan.sequential, 1, plan.warmup)
            samples[v.name]["ttfc"] += [r.ttfc for r in results]
            samples[v.name]["per_request"].append(used["cortex"]["cpu_s"] / len(results))
        for v in order:
            results, used = await load(v, plan.tokens, plan.delay_ms, plan.streams, plan.streams)
            messages = sum(r.messages for r in results)
            samples[v.name]["per_1000"].append(used["cortex"]["cpu_s"] / messages * 1000)
            if "redis" in used:
                samples[v.name]["redis_per_1000"].append(used["redis"]["cpu_s"] / messages * 1000)
    return {
        name: {
            "ttfc": summary(s["ttfc"]),
            "cpu_ms_per_request": statistics.median(s["per_request"]) * 1e3,
            "cpu_ms_per_1000_chunks": statistics.median(s["per_1000"]) * 1e3,
            "cpu_ms_per_1000_chunks_range": [min(s["per_1000"]) * 1e3, max(s["per_1000"]) * 1e3],
            "redis_cpu_ms_per_1000_chunks": statistics.median(s["redis_per_1000"]) * 1e3
            if s["redis_per_1000"]
            else None,
        }
        for name, s in samples.items()
    }


def table(stats: dict[str, Any], plan: Plan) -> Table:
    by = stats["variants"]
    names = list(by)
    bare = by["bare"]
    out = Table([f"{plan.rounds} interleaved round(s)", *names])

    def row(label: str, cell: Any) -> None:
        out.add(label, *(cell(by[n]) for n in names))

    out.add(f"10-token answers, one at a time ({plan.sequential} per round)")
    row("  TTFC p50", lambda s: ms(s["ttfc"]["p50"]))
    base = bare["ttfc"]["p50"]
    row("    added over bare", lambda s: plus_ms(s["ttfc"]["p50"] - base))
    row("  Córtex CPU per request", lambda s: f"{s['cpu_ms_per_request']:.3f} ms")
    row("    vs bare", lambda s: ratio(s["cpu_ms_per_request"], bare["cpu_ms_per_request"]))
    out.add(f"{plan.streams} streams × {plan.tokens} tokens, one every {plan.delay_ms:g} ms")
    row("  Córtex CPU per 1000 chunks", lambda s: f"{s['cpu_ms_per_1000_chunks']:.1f} ms")
    row(
        "    range over rounds",
        lambda s: "{:.1f}–{:.1f}".format(*s["cpu_ms_per_1000_chunks_range"]),
    )
    row("    vs bare", lambda s: ratio(s["cpu_ms_per_1000_chunks"], bare["cpu_ms_per_1000_chunks"]))
    row(
        "  redis-server CPU per 1000 chunks",
        lambda s: (
            ""
            if s["redis_cpu_ms_per_1000_chunks"] is None
            else f"{s['redis_cpu_ms_per_1000_chunks']:.1f} ms"
        ),
    )
    return out


def main() -> None:
    args = parser(__doc__, "one round, smaller samples").parse_args()
    plan = QUICK if args.quick else Plan()
    stats = run(measure(plan))
    print(f"Córtex {stats['machine']['cortex_source']}; {stats['pinning']}")
    m = stats["machine"]
    print(f"{m['cpu_model']}, {m['nproc']} CPUs, Python {m['python']}")
    if not stats["redis"]:
        print("redis-server not found: the Redis variant was skipped")
    print_table(table(stats, plan))
    noise = stats["noise"]
    print(
        f"other processes used {noise['others']:.0%} of the machine's CPU meanwhile, the "
        f"hypervisor stole {noise['steal']:.1%}; above a few percent, run again when it is quiet"
    )
    path = write_results("team", stats)
    print(f"\nall figures: {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    sys.exit(main())
