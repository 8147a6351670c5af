"""What bench/relay.py runs, in full and with ``--quick``; its targets."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_ADDED_TTFC = 0.001  # seconds, p50 at concurrency 1 (the aim)
TARGET_DISCONNECT = 0.100  # seconds, client hang-up until the upstream connection is closed
MIN_FIT_RUNS = 9  # (e)'s cost fit: three rounds of the three loads


@dataclass(frozen=True)
class Plan:
    sequential: int = 300
    concurrent: int = 640
    concurrency: int = 64
    short_tokens: int = 10
    cpu_streams: int = 64
    cpu_tokens: int = 2000
    paced_tokens: int = 400
    paced_delay_ms: float = 5
    disconnect_trials: int = 50
    disconnect_delay_ms: float = 20
    disconnect_after_lines: int = 3
    warmup: int = 50
    # (e): the four dialect paths, measured in interleaved rounds
    path_rounds: int = 5
    path_sequential: int = 300  # per round and target, at concurrency 1
    path_warmup: int = 20  # per round and target


QUICK = Plan(
    sequential=50,
    concurrent=128,
    cpu_tokens=500,
    paced_tokens=200,
    disconnect_trials=20,
    warmup=20,
    path_rounds=1,
    path_sequential=100,
)
