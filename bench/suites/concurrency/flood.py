"""A flood of requests with bad keys at a Córtex that requires keys: what it does to the
good streams' time to first token, and Córtex's CPU per rejected request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

from harness.cpu import family, measured
from harness.loadgen import chat_request, checked, run_load
from harness.machine import HOST
from harness.processes import Processes
from harness.servers import start_cortex

from cortex.access.keys import generate_key, hash_key
from suites.concurrency.plan import Plan

BAD_KEY = "ctx-" + "x" * 32


class Rejected(asyncio.Protocol):
    """One keep-alive connection sending bad-key requests and reading each answer whole:
    ``send()`` resolves with the status once the answer's body is in."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(0)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def send(self) -> asyncio.Future[int]:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(self._raw)
        return self._answer

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buf[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        answer = self._answer
        if len(self._buf) < end + 4 + length or answer is None:
            return
        self._buf, self._answer = self._buf[end + 4 + length :], None
        if not answer.done():  # not cancelled with the flood
            answer.set_result(int(head[9:12]))
        if b"connection: close" in head and self._transport is not None:
            self._transport.close()


async def flood(port: int, rate: float, connections: int, requests: int) -> list[int]:
    """``requests`` bad-key requests over ``connections``, at ``rate`` a second overall
    (0: as fast as they are answered); the statuses."""
    raw = chat_request(HOST, port, 10, 0, headers={"Authorization": f"Bearer {BAD_KEY}"}).raw
    loop = asyncio.get_running_loop()
    statuses: list[int] = []
    left = iter(range(requests))
    started = time.perf_counter()

    async def one() -> None:
        connection: Rejected | None = None
        try:
            for i in left:
                if rate:
                    await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                if connection is None or connection.closed:
                    _, connection = await loop.create_connection(lambda: Rejected(raw), HOST, port)
                statuses.append(await connection.send())
        finally:
            if connection is not None:
                connection.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return statuses


async def bad_keys(procs: Processes, upstream_port: int, plan: Plan, work: Path) -> dict[str, Any]:
    key = generate_key()
    config = work / "keys.toml"
    config.write_text(
        f'require_keys = true\nkeys_file = "{work / "keys.json"}"\n'
        f'[[keys]]\nname = "bench"\nkey_hash = "{hash_key(key)}"\n'
    )
    cortex = await start_cortex(procs, upstream_port, extra=["--config", str(config)])
    port, pids = cortex.port, {str(p): p for p in family(cortex.proc.pid)}
    good = chat_request(
        HOST, port, plan.tokens, plan.delay_ms, headers={"Authorization": f"Bearer {key}"}
    )
    n = plan.good_streams
    stagger = plan.tokens * plan.delay_ms / 1e3 / n
    requests = max(plan.requests_c1, 8 * n)
    checked((await run_load(HOST, port, good, 2 * n, n))[0], "warm-up")
    alone, _ = await run_load(HOST, port, good, requests, n, stagger)
    seconds = requests / n * plan.tokens * plan.delay_ms / 1e3
    flooding = asyncio.ensure_future(
        flood(port, plan.flood_rate, plan.flood_connections, int(plan.flood_rate * seconds * 3))
    )
    await asyncio.sleep(0.3)
    during, _ = await run_load(HOST, port, good, requests, n, stagger)
    flooding.cancel()
    await asyncio.gather(flooding, return_exceptions=True)
    (statuses, wall), used = await measured(
        pids, timed(flood(port, 0, plan.flood_connections, plan.flood_rejections))
    )
    cpu = sum(u["cpu_s"] for u in used.values())
    return {
        "alone": [r.ttfc for r in checked(alone, "good, alone")],
        "during": [r.ttfc for r in checked(during, "good, during the flood")],
        "flood_rate": plan.flood_rate,
        "statuses": sorted(set(statuses)),
        "cpu_us_per_rejection": cpu / len(statuses) * 1e6,
        "rejections_per_s": len(statuses) / wall,
        "log": cortex.log_lines(),
    }


async def timed(work: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = await work
    return value, time.perf_counter() - started
