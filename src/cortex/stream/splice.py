"""The relay below ASGI: an upstream answer written to the client from the network callback.

``relay.relay`` pulls each chunk through an awaited read, a generator and the
ASGI ``send`` chain: a few task switches and a dozen Python frames a token. A
``Splice`` is pushed each upstream chunk by the connection that parsed it
(``backends/h1.py``) and, once the response has started, writes what the
translator makes of it straight to the client's connection (a ``Conduit``,
from ``protocol.py``), in the same callback. What the relay promises still holds:

- lines are decoded and checked by the same decoder and translators;
- the first-byte and idle deadlines, and the heartbeat while the upstream is
  silent, run on one timer, moved when it fires and when the first chunk comes;
- backpressure: a client whose socket buffer is full pauses reading the upstream
  (and the idle clock); before the response has started, or without a conduit,
  at most ``HIGH_WATER`` bytes wait for the ASGI side before reading pauses;
- a client that hangs up closes the upstream in the callback that saw it go;
- a failure is raised where the ASGI side awaits, which frames it in-band.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from ..errors import CortexError, UpstreamProtocolError, UpstreamTimeout
from .lines import LineDecoder, LineTooLong
from .relay import RelayLimits, Translator, timeout_error

HIGH_WATER = 256 * 1024  # bytes made for the client but not yet handed to it


class Pushing(Protocol):
    """An upstream answer that pushes its chunks (``backends.h1.Connection``)."""

    started_at: float

    def push(self, sink: _Sink) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...


class _Sink(Protocol):
    def data(self, chunk: bytes) -> None: ...

    def end(self) -> None: ...

    def fail(self, exc: CortexError) -> None: ...


class Conduit(Protocol):
    """The client's connection, for a response that has started (``protocol.py``)."""

    @property
    def open(self) -> bool:
        """The response started, chunked, and has not ended: its body may be written here."""
        ...

    @property
    def paused(self) -> bool:
        """The client's socket buffer is full."""
        ...

    def write(self, data: bytes) -> None: ...

    @property
    def gone(self) -> bool:
        """The client has closed its connection."""
        ...

    def watch(self, watcher: Watcher | None) -> None:
        """Tell ``watcher`` when writing pauses or resumes, and when the client goes."""
        ...

    def on_lost(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` when the client goes (besides the watcher)."""
        ...


class Watcher(Protocol):
    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...

    def client_lost(self) -> None: ...


class Splice:
    """One upstream answer, relayed as it is pushed."""

    def __init__(self, upstream: Pushing, translator: Translator, limits: RelayLimits) -> None:
        self._upstream = upstream
        self._translator = translator
        self._limits = limits
        self._decoder = LineDecoder(limits.max_line_bytes, keep_blank=translator.reads_sse)
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._held = 0
        self._conduit: Conduit | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: CortexError | None = None
        self._ended = False
        self._gone = False
        self._got_data = False
        self._last = upstream.started_at
        self._paused_by_client = False
        self._tick = limits.heartbeat if translator.heartbeat is not None else math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self._loop.time())
        upstream.push(self)

    # the ASGI side

    async def parts(self) -> AsyncGenerator[bytes, None]:
        """What is made for the client, batch by batch, until ``direct`` takes over."""
        while True:
            if self._pending:
                out = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
                self._pending.clear()
                if self._held > HIGH_WATER:
                    self._upstream.resume()
                self._held = 0
                yield out
                continue
            if self._error is not None:
                raise self._error
            if self._ended:
                return
            await self._wait()

    async def direct(self, conduit: Conduit) -> None:
        """Write the rest of the answer to ``conduit`` from the network callbacks;
        return at its end, raise its failure."""
        if self._pending:
            conduit.write(b"".join(self._pending))
            self._pending.clear()
        if self._held > HIGH_WATER:
            self._upstream.resume()
        self._held = 0
        self._conduit = conduit
        conduit.watch(self)
        if conduit.paused:
            self.pause_writing()
        try:
            while not self._ended and self._error is None:
                await self._wait()
        finally:
            conduit.watch(None)
            self._conduit = None
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # the upstream side (a Sink)

    def data(self, chunk: bytes) -> None:
        if self._ended or self._error is not None:
            return  # the answer is over: what follows is not relayed
        now = self._last = self._loop.time()
        if not self._got_data:
            self._got_data = True
            self._rearm(now)  # the idle deadline may come before the first-byte one
        try:
            lines = self._decoder.feed(chunk)
        except LineTooLong as exc:
            self.fail(UpstreamProtocolError(f"the model server sent {exc}"))
            return
        if lines:
            self._feed(lines)

    def end(self) -> None:
        if self._ended or self._error is not None:
            return
        last = self._decoder.flush()
        if last is not None:
            self._feed([last])
            if self._ended or self._error is not None:
                return
        try:
            tail = self._translator.close()
        except CortexError as exc:
            self.fail(exc)
            return
        if tail:
            self._emit(tail)
        self._finish()

    def fail(self, exc: CortexError) -> None:
        if self._ended or self._error is not None or self._gone:
            return
        self._error = exc
        self._stop()

    # the client side (a Watcher)

    def pause_writing(self) -> None:
        self._paused_by_client = True
        self._upstream.pause()

    def resume_writing(self) -> None:
        self._paused_by_client = False
        self._last = self._loop.time()  # the idle clock ran only while the upstream owed data
        self._upstream.resume()

    def client_lost(self) -> None:
        self._gone = True  # the ASGI side is cancelled by the disconnect; nothing to report
        self._upstream.close()

    # inside

    def _feed(self, lines: list[bytes]) -> None:
        translator = self._translator
        out = translator.feed(lines)
        if out:
            self._emit(out)
        if translator.failure is not None:
            self.fail(translator.failure)
        elif translator.ended:
            self._finish()

    def _emit(self, out: bytes) -> None:
        conduit = self._conduit
        if conduit is not None:
            conduit.write(out)
            return
        self._pending.append(out)
        self._held += len(out)
        if self._held > HIGH_WATER:
            self._upstream.pause()
        self._wake()

    def _finish(self) -> None:
        self._ended = True
        self._stop()

    def _stop(self) -> None:
        self.close()
        self._upstream.pause()  # read no more; the attempt closes or keeps the connection
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _rearm(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._arm(now)

    def _arm(self, now: float) -> None:
        due = self._deadline()
        if self._tick != math.inf:
            beat = self._last + self._tick
            due = min(due, beat if beat > now else now + self._tick)
        self._timer = self._loop.call_at(due, self._on_timer)

    def _deadline(self) -> float:
        if self._got_data:
            return self._last + self._limits.idle
        return self._upstream.started_at + self._limits.first_byte

    def _on_timer(self) -> None:
        self._timer = None
        if self._ended or self._error is not None:
            return
        now = self._loop.time()
        if self._paused_by_client or self._held > HIGH_WATER:
            self._last = now  # waiting for the client, not for the upstream
        elif now >= self._deadline():
            self._timed_out()
            return
        elif self._tick != math.inf and now >= self._last + self._tick:
            heartbeat = self._translator.heartbeat
            if heartbeat:
                self._emit(heartbeat)
        self._arm(now)

    def _timed_out(self) -> None:
        error: UpstreamTimeout = timeout_error(self._got_data, self._limits)
        if self._translator.complete:  # the answer is whole; lingering after it is no fault
            self.end()
            return
        self._upstream.close()
        self.fail(error)
