"""What bench/compare.py runs, in full and with ``--quick``; its targets' names and the aims."""

from __future__ import annotations

from dataclasses import dataclass

from harness.machine import ROOT

DIRECT, NGINX, CORTEX, HAND, TRANSLATED = (
    "direct",
    "nginx",
    "Córtex",
    "hand-written",
    "Córtex translated",
)
RELAYS = (NGINX, CORTEX, HAND)
PLOT = ROOT / "docs" / "performance-ttfc.png"


@dataclass(frozen=True)
class Plan:
    rounds: int = 5
    c1_requests: int = 200  # per round and target
    cn_requests: int = 256  # per round and target
    concurrency: int = 64
    short_tokens: int = 10
    cn_paced_requests: int = 192  # per round and target: 64 streams at a model's pace
    cn_paced_tokens: int = 20
    cn_paced_delay_ms: float = 20
    streams: int = 64
    fast_tokens: int = 1000
    paced_tokens: int = 200
    paced_delay_ms: float = 5
    warmup: int = 20
    disconnect_trials: int = 12  # per round and target
    disconnect_delay_ms: float = 20
    disconnect_after: int = 3
    background_streams: int = 32
    background_delay_ms: float = 5
    before: str = ""  # an earlier Córtex's src/ directory, measured beside this one


QUICK = Plan(
    rounds=1,
    c1_requests=150,
    cn_requests=192,
    fast_tokens=500,
    paced_tokens=100,
    disconnect_trials=15,
    background_streams=16,
)


# The aims of issue #7: seconds added over direct, ratios and shares.
TTFC_P50_C1, TTFC_P99_C1, TTFC_P99_CN = 0.0005, 0.002, 0.005
CPU_VS_NGINX, THROUGHPUT_SHARE, DISCONNECT_P99 = 2.0, 0.5, 0.050
# The aims of issue #17 (the relay below ASGI), all features on.
LEAN_TTFC_P50_C1, LEAN_CPU_PACED, LEAN_CPU_PACED_TRANSLATED = 0.0003, 1.5, 2.0
LEAN_CPU_PER_REQUEST, LEAN_BACK_TO_BACK_P99, LEAN_DISCONNECT_P99 = 0.0003, 0.020, 0.005
