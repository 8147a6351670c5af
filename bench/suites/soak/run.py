"""The soak's run: a warm-up at full load, the baseline, the load with faults and clients
leaving, then the settle and what each Córtex holds afterwards."""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.pinning import Pinning
from harness.processes import processes

from suites.soak.clients import Tally, client
from suites.soak.cortex import SoakCortex, start_soak_cortex
from suites.soak.leaks import Held, figures
from suites.soak.scenarios import Scenario, SoakUpstream, scenarios

UNPINNED = Pinning(None, None, "the soak pins nothing")


async def settle(
    fake: SoakUpstream,
    cortexes: list[SoakCortex],
    baseline: dict[str, int],
    slack: int,
    limit: float,
) -> float:
    """Wait until no upstream request is open and Córtex's descriptors are near the baseline."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if fake.in_flight == 0 and all(c.fds() <= baseline[c.kind] + slack for c in cortexes):
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


class Load:
    """``concurrency`` clients until a deadline, over every Córtex and scenario."""

    def __init__(
        self, args: argparse.Namespace, cortexes: list[SoakCortex], cases: list[Scenario]
    ) -> None:
        self.args, self.cortexes, self.cases = args, cortexes, cases
        self.rng = random.Random(args.seed)

    async def until(self, stop: float, tally: Tally, secrets: tuple[str, ...]) -> None:
        rate, cases = self.args.disconnect_rate, self.cases
        await asyncio.gather(
            *(
                client(self.rng, stop, self.cortexes, cases, rate, secrets, tally)
                for _ in range(self.args.concurrency)
            )
        )


async def progress(
    args: argparse.Namespace,
    cortexes: list[SoakCortex],
    fake: SoakUpstream,
    tally: Tally,
    started: float,
    peak_rss: dict[str, int],
) -> None:
    """Every tenth or twentieth of the run: the peak RSS so far, and a line of progress."""
    stop = started + args.duration
    while time.monotonic() < stop:
        await asyncio.sleep(min(10.0, args.duration / 20))
        for c in cortexes:
            if c.alive():
                peak_rss[c.kind] = max(peak_rss[c.kind], c.rss())
        elapsed = time.monotonic() - started
        print(
            f"  {elapsed:6.0f} s  {tally.requests} requests  "
            f"{tally.violation_count()} violations  "
            f"upstream open {fake.in_flight}",
            flush=True,
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = scenarios()
    logs = Path(tempfile.mkdtemp(prefix="cortex-soak-"))
    with SoakUpstream() as fake:
        for case in cases:
            name = f"soak-{case.name}"
            fake.models.append(name)
            fake.scripts[name] = case.script
        secrets = (f"127.0.0.1:{fake.port}", f":{fake.port}")
        tally = Tally()
        async with processes(UNPINNED) as procs:
            cortexes = [await start_soak_cortex(procs, k, fake.port, logs) for k in args.kinds]
            load = Load(args, cortexes, cases)
            # warm-up at full load: imports, pools, allocator arenas; then the baseline
            warm = min(20.0, max(5.0, args.duration / 10))
            print(f"warm-up {warm:g} s at concurrency {args.concurrency} …", flush=True)
            await load.until(time.monotonic() + warm, Tally(), secrets)
            await settle(fake, cortexes, {c.kind: 10**9 for c in cortexes}, 0, 15)
            before = Held.now(cortexes)
            print(f"baseline: fds {before.fds}, RSS MiB {before.rss_mib()}", flush=True)

            started = time.monotonic()
            peak_rss = dict(before.rss)
            await asyncio.gather(
                progress(args, cortexes, fake, tally, started, peak_rss),
                load.until(started + args.duration, tally, secrets),
            )
            elapsed = time.monotonic() - started
            slack = before.slack(args.concurrency)
            settled_in = await settle(fake, cortexes, before.fds, slack, 30)
            after = Held.now(cortexes)
        upstream_open = fake.in_flight
    return figures(
        args, tally, cortexes, before, after, peak_rss, elapsed, settled_in, upstream_open
    )
