"""What an OpenAI-compatible engine says of its own load: vLLM's and llama.cpp's figures.

vLLM serves Prometheus metrics at ``/metrics`` (requests running and waiting, KV
cache use); llama.cpp's server does too when started with ``--metrics``, and shows
its slots at ``/slots``. Either is read on the health check and after answers, so
the router counts requests that came from other clients, not only its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

RUNNING = ("vllm:num_requests_running", "llamacpp:requests_processing")
WAITING = ("vllm:num_requests_waiting", "llamacpp:requests_deferred")
KV_CACHE = (
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "llamacpp:kv_cache_usage_ratio",
)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    running: int
    waiting: int
    kv_cache: float | None  # the fraction in use, where reported
    source: str  # "metrics" or "slots"

    @property
    def busy(self) -> int:
        return self.running + self.waiting

    def view(self) -> dict[str, int | float | str | None]:
        return {
            "running": self.running,
            "waiting": self.waiting,
            "kv_cache": self.kv_cache,
            "source": self.source,
        }


def from_metrics(text: bytes) -> EngineLoad | None:
    """The figures of a Prometheus text answer, summed over labels; None without any."""
    sums: dict[str, float] = {}
    for raw in text.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:  # name{labels} value [timestamp]; labels may hold spaces
            name, after = line.split("{", 1)[0], line.rsplit("}", 1)[-1]
        else:
            name, _, after = line.partition(" ")
        try:
            number = float(after.split()[0])
        except (ValueError, IndexError):
            continue
        sums[name] = sums.get(name, 0.0) + number
    running, waiting = _first(sums, RUNNING), _first(sums, WAITING)
    if running is None and waiting is None:
        return None
    return EngineLoad(int(running or 0), int(waiting or 0), _first(sums, KV_CACHE), "metrics")


def from_slots(body: bytes) -> EngineLoad | None:
    """llama.cpp's ``/slots``: a list of slots, each busy or not; None if not that."""
    try:
        slots = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
        return None
    running = sum(1 for s in slots if s.get("is_processing") is True or s.get("state") == 1)
    return EngineLoad(running, 0, None, "slots")


def _first(sums: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((sums[n] for n in names if n in sums), None)
