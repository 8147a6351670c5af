"""A load measured with the CPU of the processes serving it, and the warm-up before one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.cpu import measured
from harness.loadgen import ChatRequest, Dialect, Result, chat_request, checked, run_load
from harness.machine import HOST


@dataclass(frozen=True)
class Measured:
    """A load's results (every stream checked), its wall time, and per process the CPU
    seconds used and the seconds spent waiting for a CPU meanwhile."""

    results: list[Result]
    wall_s: float
    used: dict[str, Any]

    def of(self, prefix: str) -> list[dict[str, float]]:
        """The usage of the processes whose name starts with ``prefix``."""
        return [u for name, u in self.used.items() if name.startswith(prefix)]


async def measured_load(
    port: int,
    request: ChatRequest,
    requests: int,
    concurrency: int,
    pids: dict[str, int],
    what: str,
    stagger: float = 0,
) -> Measured:
    """``requests`` copies of ``request`` at ``port`` (see ``run_load``), with the CPU of
    ``pids``; fails if a stream did."""
    (results, wall), used = await measured(
        pids, run_load(HOST, port, request, requests, concurrency, stagger)
    )
    return Measured(checked(results, what), wall, used)


async def warm_up(
    port: int, request: ChatRequest, requests: int, concurrency: int, what: str
) -> None:
    """The same load, unmeasured: connections, imports and caches warm."""
    checked((await run_load(HOST, port, request, requests, concurrency))[0], f"{what} warm-up")


async def warmed_load(
    port: int,
    request: ChatRequest,
    warmup: int,
    requests: int,
    concurrency: int,
    pids: dict[str, int],
    what: str,
    stagger: float = 0,
) -> Measured:
    """``warmup`` requests unmeasured, then the measured load, at one concurrency."""
    await warm_up(port, request, warmup, concurrency, what)
    return await measured_load(port, request, requests, concurrency, pids, what, stagger)


async def long_streams(
    port: int,
    streams: int,
    tokens: int,
    delay_ms: float,
    pids: dict[str, int],
    what: str,
    dialect: Dialect = "ollama",
    requests: int = 0,
    stagger: float = 0,
) -> Measured:
    """``streams`` answers of ``tokens`` at once (``requests`` of them over as many
    connections, if more), after a warm-up of as many answers a tenth as long."""
    warm = chat_request(HOST, port, tokens // 10, delay_ms, dialect)
    await warm_up(port, warm, streams, streams, what)
    request = chat_request(HOST, port, tokens, delay_ms, dialect)
    return await measured_load(port, request, requests or streams, streams, pids, what, stagger)
