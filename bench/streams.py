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
Its parts are in bench/suites/streams/.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace

from harness.cli import cancel_on_sigterm, parser, quick_or_full, run_benchmark
from harness.cpu import CpuClock
from harness.machine import ROOT
from harness.pinning import choose_pinning
from harness.processes import processes
from harness.results import facts, write_results
from suites.streams.limits import (
    descriptors_short,
    fewest_workers,
    kernel_settings,
    raise_open_files,
)
from suites.streams.plan import QUICK, Plan
from suites.streams.report import print_report, to_json
from suites.streams.runs import direct, via_cortex


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
