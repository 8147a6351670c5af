"""Pull upstream chunks as fast as the client drains them, and never lie about the end.

Reading is timed in two phases: until the first byte (a model may take minutes
to load) and between chunks (the idle gap). While the upstream is silent the
reader wakes every ``tick`` seconds so a framing with a heartbeat can send one.
The caller awaits each client write before asking for the next chunk, so a
slow client slows the upstream reads instead of growing a buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal

import orjson

from ..backends.base import UpstreamBody
from ..errors import (
    FirstByteTimeout,
    IdleTimeout,
    UpstreamIncomplete,
    UpstreamProtocolError,
)
from .encode import Framing
from .lines import LineDecoder, LineTooLong


@dataclass(frozen=True, slots=True)
class RelayLimits:
    first_byte: float
    idle: float
    heartbeat: float
    max_line_bytes: int
    max_response_bytes: int


class TimedReader:
    """Reads an upstream body within the first-byte and idle deadlines."""

    def __init__(self, body: UpstreamBody, limits: RelayLimits, tick: float | None = None) -> None:
        self._body = body
        self._limits = limits
        self._tick = tick
        self._deadline = body.started_at + limits.first_byte
        self._timeout: type[FirstByteTimeout | IdleTimeout] = FirstByteTimeout

    async def read(self) -> bytes | None:
        """The next chunk, ``b""`` at the end, or ``None`` after ``tick`` seconds of silence.

        Raises FirstByteTimeout or IdleTimeout when a phase runs out.
        """
        loop = asyncio.get_running_loop()
        remaining = self._deadline - loop.time()
        if remaining <= 0:
            raise self._timeout(_timeout_message(self._timeout, self._limits))
        tick = self._tick
        try:
            async with asyncio.timeout(min(remaining, tick) if tick else remaining):
                chunk = await self._body.read()
        except TimeoutError:
            if loop.time() < self._deadline:
                return None
            raise self._timeout(_timeout_message(self._timeout, self._limits)) from None
        if chunk:
            self._deadline = loop.time() + self._limits.idle
            self._timeout = IdleTimeout
        return chunk


def _timeout_message(kind: type[FirstByteTimeout | IdleTimeout], limits: RelayLimits) -> str:
    if kind is FirstByteTimeout:
        return f"the model server sent nothing within {limits.first_byte:g} s"
    return f"the model server went silent for {limits.idle:g} s in the middle of the answer"


Outcome = Literal["more", "done", "error", "invalid"]


async def relay_lines(
    body: UpstreamBody, framing: Framing, limits: RelayLimits
) -> AsyncGenerator[bytes, None]:
    """Relay an Ollama NDJSON stream, framed for the client.

    Lines are forwarded byte for byte once complete; each is parsed only to
    check it is a JSON object and to see the final ``"done": true``. The stream
    ends cleanly only after that final line (or an upstream error line);
    anything else raises, so the caller can tell the client.
    """
    decoder = LineDecoder(limits.max_line_bytes)
    tick = limits.heartbeat if framing.heartbeat is not None else None
    done = False
    eof = False
    reader = TimedReader(body, limits, tick)
    while not eof:
        chunk = await reader.read()
        if chunk is None:
            yield framing.heartbeat or b""
            continue
        if chunk:
            try:
                lines = decoder.feed(chunk)
            except LineTooLong as exc:
                raise UpstreamProtocolError(f"the model server sent {exc}") from None
        else:
            eof = True
            last = decoder.flush()
            lines = [last] if last is not None else []
        if not lines:
            continue
        good, outcome = _check(lines)
        if good:
            yield framing.lines(lines if good == len(lines) else lines[:good])
        if outcome == "error":
            yield framing.upstream_error(lines[good])
            return
        if outcome == "invalid":
            raise UpstreamProtocolError("the model server sent a line that is not a JSON object")
        done = done or outcome == "done"
    if not done:
        raise UpstreamIncomplete(
            "the model server closed the stream before the answer was complete"
        )


def _check(lines: list[bytes]) -> tuple[int, Outcome]:
    """How many leading lines may be forwarded, and what ended the batch.

    ``"error"`` and ``"invalid"`` refer to the line just after the good ones:
    an upstream error line, or one that is not a JSON object.
    """
    outcome: Outcome = "more"
    for index, line in enumerate(lines):
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return index, "invalid"
        if type(message) is not dict:
            return index, "invalid"
        if "error" in message:
            return index, "error"
        if message.get("done") is True:
            outcome = "done"
    return len(lines), outcome


async def read_whole(body: UpstreamBody, limits: RelayLimits) -> bytes:
    """Read an entire (non-streaming) upstream body, bounded in time and size."""
    parts: list[bytes] = []
    size = 0
    reader = TimedReader(body, limits)
    while chunk := await reader.read():
        size += len(chunk)
        if size > limits.max_response_bytes:
            raise UpstreamProtocolError(
                f"the model server's answer exceeded {limits.max_response_bytes} bytes"
            )
        parts.append(chunk)
    return b"".join(parts)
