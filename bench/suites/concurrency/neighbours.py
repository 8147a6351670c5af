"""Head-of-line blocking: do the fast streams' tokens wait for one slow stream beside them?

Fast streams (a model's pace) alone, then beside each of: a client that asks for a long
answer and reads none of it (its socket's buffers fill, the relay must hold that stream
alone), a slow upstream stream (a token every 250 ms), and one stream read as fast as the
upstream writes it (the busiest neighbour an event loop can have)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import cast

from harness.loadgen import ChatRequest, StreamConnection, chat_request, checked, run_load
from harness.machine import HOST

from suites.concurrency.added import pooled_gaps
from suites.concurrency.plan import Plan
from suites.concurrency.targets import Target

CASES = ("alone", "beside a client that does not read", "beside a slow upstream stream",
         "beside an unpaced stream")  # fmt: skip


class Stalled(asyncio.Protocol):
    """A client that sends its request and then reads nothing."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)
        self.transport.pause_reading()


@contextlib.asynccontextmanager
async def beside(case: str, target: Target, plan: Plan) -> AsyncIterator[None]:
    """The slow neighbour of ``case`` running while the block runs."""
    if case == CASES[0]:
        yield
        return
    if case == CASES[1]:
        raw = chat_request(HOST, target.port, plan.slow_client_tokens, 0, target.client).raw
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: Stalled(raw), HOST, target.port)
        await asyncio.sleep(1)  # the sockets' buffers fill and the relay holds
        try:
            yield
        finally:
            transport.close()
        return
    tokens, delay = (40, plan.slow_upstream_delay_ms) if case == CASES[2] else (10**6, 0)
    connection = await StreamConnection.open(HOST, target.port)
    slow = asyncio.ensure_future(
        connection.request(chat_request(HOST, target.port, tokens, delay, target.client))
    )
    await asyncio.sleep(0.2)
    try:
        yield
    finally:
        slow.cancel()
        connection.close()
        with contextlib.suppress(asyncio.CancelledError):
            await slow


async def fast_streams(target: Target, plan: Plan) -> tuple[list[float], list[float]]:
    request: ChatRequest = chat_request(
        HOST, target.port, plan.neighbour_tokens, plan.delay_ms, target.client, timed=True
    )
    n = plan.neighbours
    stagger = plan.neighbour_tokens * plan.delay_ms / 1e3 / n
    results, _ = await run_load(HOST, target.port, request, 2 * n, n, stagger)
    checked(results, target.name)
    return [r.ttfc for r in results], pooled_gaps(r.arrivals for r in results)


async def neighbours(
    targets: list[Target], plan: Plan, say: Callable[[str], None] = print
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per target and case: the fast streams' times to first token and their gaps."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {t.name: {} for t in targets}
    for case in CASES:
        for target in targets:
            async with beside(case, target, plan):
                ttfc, gaps = await fast_streams(target, plan)
            out[target.name][case] = {"ttfc": ttfc, "gaps": gaps}
        say(f"  neighbours: {case} done")
    return out
