"""Pull upstream chunks as fast as the client drains them, and never lie about the end.

Reading is timed in two phases: until the first byte (a model may take minutes
to load) and between chunks (the idle gap). While the upstream is silent the
reader wakes every ``tick`` seconds so a framing with a heartbeat can send one.
The caller awaits each client write before asking for the next chunk, so a
slow client slows the upstream reads instead of growing a buffer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..chat import Usage
from ..errors import (
    CortexError,
    FirstByteTimeout,
    IdleTimeout,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from .lines import LineDecoder, LineTooLong


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


@dataclass(frozen=True, slots=True)
class RelayLimits:
    first_byte: float
    idle: float
    heartbeat: float
    max_line_bytes: int
    max_response_bytes: int


class Translator(Protocol):
    """Turns an upstream's lines into what the client reads.

    ``feed`` returns the bytes to send now (possibly none). Afterwards
    ``failure`` holds an error to raise once they are sent, and ``ended`` says
    the upstream finished (an error line was forwarded) so reading stops.
    ``complete`` says the answer's final message has been seen. ``close``
    runs at the upstream's end and raises if the answer is incomplete.
    """

    heartbeat: bytes | None
    reads_sse: bool  # the upstream sends server-sent events: blank lines end them
    failure: CortexError | None
    ended: bool
    complete: bool
    usage: Usage  # the token counts the upstream reported, once it did
    pieces: int  # pieces of the answer relayed, for when it reports none

    def feed(self, lines: list[bytes]) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, exc: CortexError) -> bytes: ...


class TimedReader:
    """Reads an upstream body within the first-byte and idle deadlines.

    The idle clock runs only while Córtex waits for the upstream, not while it
    waits for a slow client. One watchdog timer per stream, rescheduled only
    when it fires, replaces a timeout object per read (this is the hot path).
    """

    def __init__(self, body: UpstreamBody, limits: RelayLimits, tick: float | None = None) -> None:
        self._body = body
        self._limits = limits
        self._tick = tick
        self._loop = asyncio.get_running_loop()
        self._first_byte_deadline = body.started_at + limits.first_byte
        self._got_data = False
        self._deadline = 0.0
        self._tick_at = math.inf
        self._waiter: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._woke: Literal["tick", "timeout"] | None = None

    async def read(self) -> bytes | None:
        """The next chunk, ``b""`` at the end, or ``None`` after ``tick`` seconds of silence.

        Raises FirstByteTimeout or IdleTimeout when a phase runs out.
        """
        now = self._loop.time()
        self._deadline = now + self._limits.idle if self._got_data else self._first_byte_deadline
        if now >= self._deadline:
            raise self._timeout_error()
        self._tick_at = now + self._tick if self._tick else math.inf
        self._arm()
        task = self._waiter = asyncio.current_task()
        assert task is not None
        try:
            chunk = await self._body.read()
        except asyncio.CancelledError:
            woke, self._woke = self._woke, None
            if woke is None or task.uncancel() > 0:
                raise
            if woke == "tick":
                return None
            raise self._timeout_error() from None
        finally:
            self._waiter = None
        if chunk:
            self._got_data = True
        return chunk

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        due = min(self._deadline, self._tick_at)
        if self._timer is not None:
            if self._timer.when() <= due:
                return  # it fires early, finds nothing due, and moves itself
            self._timer.cancel()
        self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None:
            return  # busy writing to the client; the next read arms it again
        now = self._loop.time()
        due = min(self._deadline, self._tick_at)
        if now < due:
            self._timer = self._loop.call_at(due, self._on_timer)
            return
        self._woke = "timeout" if now >= self._deadline else "tick"
        self._waiter.cancel()

    def _timeout_error(self) -> FirstByteTimeout | IdleTimeout:
        return timeout_error(self._got_data, self._limits)


def timeout_error(got_data: bool, limits: RelayLimits) -> FirstByteTimeout | IdleTimeout:
    """The deadline that ran out: between chunks once some came, else the first byte's."""
    if got_data:
        return IdleTimeout(
            f"the model server went silent for {limits.idle:g} s in the middle of the answer"
        )
    return FirstByteTimeout(f"the model server sent nothing within {limits.first_byte:g} s")


async def relay(
    body: UpstreamBody, translator: Translator, limits: RelayLimits
) -> AsyncGenerator[bytes, None]:
    """Relay an upstream stream of lines through a translator.

    Raises when the stream cannot end honestly (a timeout, a broken or
    incomplete answer), so the caller can tell the client.
    """
    decoder = LineDecoder(limits.max_line_bytes, keep_blank=translator.reads_sse)
    tick = limits.heartbeat if translator.heartbeat is not None else None
    reader = TimedReader(body, limits, tick)
    try:
        while True:
            try:
                chunk = await reader.read()
            except UpstreamTimeout:
                if not translator.complete:
                    raise
                chunk = b""  # the answer is whole; an upstream that lingers after it is no fault
            if chunk is None:
                yield translator.heartbeat or b""
                continue
            try:
                lines = decoder.feed(chunk) if chunk else _last(decoder)
            except LineTooLong as exc:
                raise UpstreamProtocolError(f"the model server sent {exc}") from None
            if lines:
                out = translator.feed(lines)
                if out:
                    yield out
                if translator.failure is not None:
                    raise translator.failure
                if translator.ended:
                    return
            if not chunk:
                tail = translator.close()
                if tail:
                    yield tail
                return
    finally:
        reader.close()


def _last(decoder: LineDecoder) -> list[bytes]:
    last = decoder.flush()
    return [last] if last is not None else []


async def read_whole(body: UpstreamBody, limits: RelayLimits) -> bytes:
    """Read an entire (non-streaming) upstream body, bounded in time and size."""
    parts: list[bytes] = []
    size = 0
    reader = TimedReader(body, limits)
    try:
        while chunk := await reader.read():
            size += len(chunk)
            if size > limits.max_response_bytes:
                raise UpstreamProtocolError(
                    f"the model server's answer exceeded {limits.max_response_bytes} bytes"
                )
            parts.append(chunk)
    finally:
        reader.close()
    return b"".join(parts)
