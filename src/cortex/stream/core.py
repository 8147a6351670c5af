"""The relay core: an upstream answer's chunks through a translator, with the clock rules.

It does no I/O and reads no clock: a driver hands it each chunk, the end, and
each wake-up at ``due()`` with the time, and sends the client what it returns.
Both drivers use it (``pull.py`` under ASGI, ``push.py`` below it), so what the
relay promises is written here once:

- lines are split on ``\\n`` only and bounded (``max_line_bytes``); a line or
  character cut across chunks is joined before anyone reads it;
- the first byte is awaited ``first_byte`` seconds from the request, each later
  one ``idle`` seconds from the last (time spent waiting for a slow client does
  not count: the driver says when it waited, with ``resumed``);
- while the upstream is silent a framing with a heartbeat gets one every
  ``heartbeat`` seconds, also before the first byte;
- an answer ends only when the translator saw its final message; an upstream
  that stops before is a failure, and one that lingers after it is no fault;
- what the upstream sent since the client was last given something is bounded
  (``max_response_bytes``): a translator that holds the whole answer for a client
  that asked for no stream holds no more than a whole answer read as it came.

After each call, ``failure`` holds an error to report once the returned bytes
are sent, and ``finished`` says reading is over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import CortexError, FirstByteTimeout, IdleTimeout, UpstreamProtocolError
from .contract import Translator
from .lines import LineDecoder, LineTooLong


@dataclass(frozen=True, slots=True)
class RelayLimits:
    first_byte: float
    idle: float
    heartbeat: float
    max_line_bytes: int
    max_response_bytes: int


class RelayCore:
    def __init__(self, translator: Translator, limits: RelayLimits, started_at: float) -> None:
        self.translator = translator
        self._limits = limits
        self._decoder = LineDecoder(limits.max_line_bytes, keep_blank=translator.reads_sse)
        self._first_byte_deadline = started_at + limits.first_byte
        self._tick = limits.heartbeat if translator.heartbeat is not None else math.inf
        self._beat_at = started_at + self._tick
        self._last = started_at  # the upstream's last chunk, or the client's last catch-up
        self._held = 0  # bytes from the upstream since the client was last given some
        self.got_data = False
        self.failure: CortexError | None = None
        self.finished = False

    def deadline(self) -> float:
        """When the upstream's silence becomes a timeout."""
        return self._last + self._limits.idle if self.got_data else self._first_byte_deadline

    def due(self) -> float:
        """When the driver must call ``wake``: the deadline or the next heartbeat."""
        return min(self.deadline(), self._beat_at)

    def data(self, chunk: bytes, now: float) -> bytes:
        """A chunk from the upstream; what to send the client for it."""
        if self.finished:
            return b""  # the answer is over: what follows is not relayed
        self.got_data = True
        self._last = now
        self._beat_at = now + self._tick
        try:
            lines = self._decoder.feed(chunk)
        except LineTooLong as exc:
            return self._fail(UpstreamProtocolError(f"the model server sent {exc}"))
        if lines:
            translator = self.translator
            out = translator.feed(lines)
            if translator.failure is not None or translator.ended:  # the relay ends: rare
                self._judge(translator)
        else:
            out = b""
        if out:
            self._held = 0
            return out
        self._held += len(chunk)
        if self._held > self._limits.max_response_bytes and not self.finished:
            bound = self._limits.max_response_bytes
            return self._fail(
                UpstreamProtocolError(f"the model server's answer exceeded {bound} bytes")
            )
        return b""

    def end(self) -> bytes:
        """The upstream's body ended: a last line without its newline, then the close."""
        if self.finished:
            return b""
        out = b""
        last = self._decoder.flush()
        if last is not None:
            out = self._feed([last])
            if self.finished:
                return out
        self.finished = True
        try:
            return out + self.translator.close()
        except CortexError as exc:
            self.failure = exc
            return out

    def wake(self, now: float) -> bytes:
        """The time ``due()`` gave has come: a heartbeat, a timeout, or nothing yet."""
        if self.finished:
            return b""
        if now >= self.deadline():
            if self.translator.complete:  # the answer is whole; lingering after it is no fault
                return self.end()
            return self._fail(timeout_error(self.got_data, self._limits))
        if now >= self._beat_at:
            self._beat_at = now + self._tick
            return self.translator.heartbeat or b""
        return b""

    def resumed(self, now: float) -> None:
        """The driver waited for the client until ``now``: the idle clock and the
        heartbeat's start again."""
        self._beat_at = max(self._beat_at, now + self._tick)
        if self.got_data:
            self._last = max(self._last, now)

    def _feed(self, lines: list[bytes]) -> bytes:
        translator = self.translator
        out = translator.feed(lines)
        self._judge(translator)
        return out

    def _judge(self, translator: Translator) -> None:
        """After a feed: the translator's failure, or its end, ends the relay."""
        if translator.failure is not None:
            self.failure = translator.failure
            self.finished = True
        elif translator.ended:
            self.finished = True

    def _fail(self, exc: CortexError) -> bytes:
        self.failure = exc
        self.finished = True
        return b""


def timeout_error(got_data: bool, limits: RelayLimits) -> FirstByteTimeout | IdleTimeout:
    """The deadline that ran out: between chunks once some came, else the first byte's."""
    if got_data:
        return IdleTimeout(
            f"the model server went silent for {limits.idle:g} s in the middle of the answer"
        )
    return FirstByteTimeout(f"the model server sent nothing within {limits.first_byte:g} s")
