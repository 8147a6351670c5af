"""What bench/concurrency.py runs, in full and with ``--quick``, and the published figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.machine import ROOT

PLOT = ROOT / "docs" / "performance-concurrency.png"

# p99 added time to first token, ms, at concurrency 1 / 4 / 16 / 64 (BerriAI's
# AIGatewayBench, as issue #29 quotes it): another machine, mock and stream shape.
PUBLISHED: dict[str, dict[int, float]] = {
    "LiteLLM (Python)": {1: 9.8, 4: 26.9, 16: 251, 64: 546},
    "Bifrost (Go)": {1: 0.7, 4: 0.6, 16: 0.9, 64: 28.7},
    "LiteLLM (Rust)": {1: 0.9, 4: 0.6, 16: 0.3, 64: 40},
}
AIM_SCALING = 0.8  # --workers N carries at least 0.8 x N the streams of one worker


@dataclass(frozen=True)
class Plan:
    rounds: int = 2
    levels: tuple[int, ...] = (1, 4, 16, 64, 256)
    tokens: int = 20  # the sweep's answers: a model's pace, a token every delay_ms
    delay_ms: float = 5
    requests_c1: int = 150  # per round, target and level: at least this many,
    requests_per_stream: int = 4  # and this many per connection
    warmup: int = 20
    prompt_tokens: tuple[int, ...] = (1_000, 10_000, 100_000)
    prompt_requests: int = 60
    neighbours: int = 32  # the fast streams beside a slow one
    neighbour_tokens: int = 40
    slow_client_tokens: int = 20_000  # what the client that does not read is sent
    slow_upstream_delay_ms: float = 250
    tool_deltas: int = 200
    tool_requests: int = 40
    tool_concurrency: int = 8
    flood_rate: float = 1000  # bad-key requests a second
    flood_connections: int = 16
    flood_rejections: int = 3000  # for the CPU per rejected request, flood alone
    good_streams: int = 16
    saturation_concurrency: int = 64
    saturation_requests: int = 2000
    profile_seconds: float = 8
    dialect_paths: tuple[str, ...] = field(
        default=("ollama→ollama", "openai→openai", "openai→ollama")
    )


QUICK = Plan(
    rounds=1,
    requests_c1=30,
    requests_per_stream=2,
    warmup=5,
    prompt_requests=15,
    tool_deltas=100,
    tool_requests=16,
    flood_rejections=1000,
    saturation_requests=800,
    profile_seconds=2,
)
