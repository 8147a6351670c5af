"""What bench/streams.py runs, in full and with ``--quick``; its target."""

from __future__ import annotations

from dataclasses import dataclass

KB = 1000
TARGET_PER_STREAM = 50 * KB  # bytes of resident memory per open stream (issue #7)
SAMPLE_EVERY = 0.25  # seconds between memory samples during a wave
FD_SPARE = 400  # open files a Córtex process needs besides two per stream (a guess with room)


@dataclass(frozen=True)
class Plan:
    streams: int = 10_000
    tokens: int = 60
    delay_ms: float = 1000  # see the README: 10,000 x 20 tokens/s is past this machine
    batch: int = 500  # connections opened at once while ramping up
    warmup: int = 200  # streams of a short wave before the idle figure
    batch_wait_s: float = 10.0  # at most, for a batch's first tokens before the next batch
    settle_s: float = 3.0  # wait before measuring at rest
    pool_expiry_s: float = 65.0  # after a wave through Córtex: its idle upstream connections
    # stay open 30 to 60 s (aiohttp keep-alive); the figures after a wave wait until they closed
    workers: int = 0  # 0: the fewest Córtex processes whose open files fit the limit


QUICK = Plan(streams=1000, tokens=100, delay_ms=50, batch=250, warmup=50, settle_s=2.0)
