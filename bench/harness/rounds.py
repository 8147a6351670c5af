"""Interleaved rounds, a run's figures, and the figures of the same load over the rounds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self, TypeVar

from harness.cpu import Snapshot
from harness.loadgen import Result

T = TypeVar("T")


def interleaved(items: Sequence[T], round_: int) -> list[T]:
    """The order of a round: as given in even rounds, reversed in odd ones, so that drift
    over the run hits every target alike."""
    return list(items) if round_ % 2 == 0 else list(items)[::-1]


class RoundNoise:
    """Each round's share of the machine used by processes not the benchmark's, and stolen
    by the hypervisor: ``start()`` before a round, ``end()`` after it."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.per_round: list[dict[str, float]] = []
        self._start = Snapshot.now()

    def start(self) -> None:
        self._start = Snapshot.now()

    def end(self, say: bool = True) -> dict[str, float]:
        end = Snapshot.now()
        noise = {"wall_s": end.at - self._start.at, **end.others_since(self._start)}
        self.per_round.append(noise)
        if say:
            print(
                f"  round {len(self.per_round)}/{self.rounds}: others used "
                f"{noise['others']:.0%} of the machine, the hypervisor stole {noise['steal']:.0%}",
                flush=True,
            )
        return noise


@dataclass(frozen=True)
class Run:
    """One load through a relay, as the client received it, and the relay's CPU meanwhile."""

    messages: int
    chunks: int  # HTTP chunks: the relay's writes of the answer body
    requests: int
    wall_s: float
    cpu_s: float
    wait_s: float

    @classmethod
    def of(
        cls, results: list[Result], wall: float, relay: list[dict[str, float]], **more: float
    ) -> Self:
        """The run of a load from its results and the relay's processes' CPU (``measured``);
        ``more`` are a subclass's fields."""
        return cls(
            messages=sum(r.messages for r in results),
            chunks=sum(r.chunks for r in results),
            requests=len(results),
            wall_s=wall,
            cpu_s=sum(u["cpu_s"] for u in relay),
            wait_s=sum(u["wait_s"] for u in relay),
            **more,
        )

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.cpu_s / self.messages * 1e6


def rounds_of(runs: list[Run]) -> dict[str, Any]:
    """The same load's runs over the rounds: medians, the CPU's range, and every run."""
    return {
        "cpu_ms_per_1000": statistics.median(r.cpu_ms_per_1000 for r in runs),
        "cpu_ms_per_1000_min": min(r.cpu_ms_per_1000 for r in runs),
        "cpu_ms_per_1000_max": max(r.cpu_ms_per_1000 for r in runs),
        "messages_per_s": statistics.median(r.messages / r.wall_s for r in runs),
        "messages_per_chunk": sum(r.messages for r in runs) / sum(r.chunks for r in runs),
        "cortex_busy": statistics.median(r.cpu_s / r.wall_s for r in runs),
        "cortex_waiting": statistics.median(r.wait_s / r.wall_s for r in runs),
        "rounds": [asdict(r) for r in runs],
    }
