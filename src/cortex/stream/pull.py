"""The ASGI driver: pull each upstream chunk as fast as the client drains, through the core.

The caller awaits each client write before asking for the next part, so a slow
client slows the upstream reads instead of growing a buffer. One watchdog timer
per stream, moved only when it fires, wakes the read at the core's ``due()``
time: no timeout object per read (this is the hot path).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from ..deadline import AfterReads
from ..errors import UpstreamProtocolError
from .contract import Translator
from .core import RelayCore, RelayLimits, timeout_error


class UpstreamBody(Protocol):
    """An open upstream response whose status was already checked.

    ``read`` returns the next chunk as it arrived from the network, ``b""`` at
    the end, and raises an ``UpstreamError`` if the connection breaks.
    """

    @property
    def started_at(self) -> float:
        """Event-loop time at which the request was sent."""
        ...

    async def read(self) -> bytes: ...


class Watchdog:
    """Reads a body, giving up at a time: ``None`` then instead of a chunk."""

    def __init__(self, body: UpstreamBody) -> None:
        self._body = body
        self._loop = asyncio.get_running_loop()
        self._due = 0.0
        self._waiter: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | AfterReads | None = None
        self._woke = False
        self._settling = False  # the time came; judged once the loop has read

    async def read(self, due: float) -> bytes | None:
        if self._loop.time() >= due:
            return None
        self._due = due
        self._arm()
        task = self._waiter = asyncio.current_task()
        assert task is not None
        try:
            return await self._body.read()
        except asyncio.CancelledError:
            woke, self._woke = self._woke, False
            if not woke or task.uncancel() > 0:
                raise
            return None
        finally:
            self._waiter = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        timer = self._timer
        if timer is not None:
            if isinstance(timer, AfterReads) or timer.when() <= self._due:
                return  # it fires early, finds nothing due, and moves itself
            timer.cancel()
        self._timer = self._loop.call_at(self._due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        settled, self._settling = self._settling, False
        if self._waiter is None:
            return  # busy writing to the client; the next read arms it again
        if self._loop.time() < self._due:
            self._timer = self._loop.call_at(self._due, self._on_timer)
            return
        if not settled:  # what came in time may not have been read yet
            self._settling = True
            self._timer = AfterReads(self._loop, self._on_timer)
            return
        self._woke = True
        self._waiter.cancel()


async def pull(
    body: UpstreamBody, translator: Translator, limits: RelayLimits
) -> AsyncGenerator[bytes, None]:
    """The client's bytes, part by part; raises when the stream cannot end honestly (a
    timeout, a broken or incomplete answer), after the parts made before it."""
    loop = asyncio.get_running_loop()
    core = RelayCore(translator, limits, body.started_at)
    watchdog = Watchdog(body)
    try:
        while not core.finished:
            core.resumed(loop.time())
            chunk = await watchdog.read(core.due())
            if chunk is None:
                out = core.wake(loop.time())
            elif chunk:
                out = core.data(chunk, loop.time())
            else:
                out = core.end()
            if out:
                yield out
        if core.failure is not None:
            raise core.failure
    finally:
        watchdog.close()


async def read_whole(body: UpstreamBody, limits: RelayLimits) -> bytes:
    """An entire (non-streaming) upstream body, bounded in time and size."""
    loop = asyncio.get_running_loop()
    parts: list[bytes] = []
    size = 0
    watchdog = Watchdog(body)
    got_data = False
    try:
        while True:
            wait = limits.idle if got_data else limits.first_byte
            start = loop.time() if got_data else body.started_at
            chunk = await watchdog.read(start + wait)
            if chunk is None:
                raise timeout_error(got_data, limits)
            if not chunk:
                return b"".join(parts)
            got_data = True
            size += len(chunk)
            if size > limits.max_response_bytes:
                raise UpstreamProtocolError(
                    f"the model server's answer exceeded {limits.max_response_bytes} bytes"
                )
            parts.append(chunk)
    finally:
        watchdog.close()
