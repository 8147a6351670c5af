"""The driver below ASGI: an upstream answer written to the client from the network callback.

Pulling each chunk through an awaited read, a generator and the ASGI ``send``
chain costs a few task switches and a dozen Python frames a token. A ``Push``
is handed each chunk by the connection that parsed it (``backends/h1.py``),
gives it to the relay core, and once the response has started writes what comes
out straight to the client's connection (a ``Conduit``, from ``protocol.py``),
in the same callback. What is particular to pushing lives here:

- backpressure: a client whose socket buffer is full pauses reading the upstream
  (and the idle clock); before the response has started, or without a conduit,
  at most ``HIGH_WATER`` bytes wait for the ASGI side before reading pauses;
- one timer, at the core's ``due()`` time, moved when it fires and when data comes;
  a deadline is judged once the loop has read what came meanwhile (``deadline.py``);
- what the answer's last read made is not written below ASGI but handed back by
  ``direct``, for the ASGI side to send with the end of the body: one write;
- a client that hangs up closes the upstream in the callback that saw it go;
- a failure is raised where the ASGI side awaits, which frames it in-band.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from ..deadline import AfterReads
from ..errors import CortexError
from .contract import Translator
from .core import RelayCore, RelayLimits
from .ends import Conduit, Pushing

HIGH_WATER = 256 * 1024  # bytes made for the client but not yet handed to it


class Push:
    """One upstream answer, relayed as it is pushed."""

    def __init__(self, upstream: Pushing, translator: Translator, limits: RelayLimits) -> None:
        self._upstream = upstream
        self._loop = asyncio.get_running_loop()
        self._core = RelayCore(translator, limits, upstream.started_at)
        self._pending: list[bytes] = []
        self._tail = b""  # the last output, once the answer ended, for the body's end
        self._held = 0
        self._conduit: Conduit | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._gone = False
        self._paused_by_client = False
        self._timer: asyncio.TimerHandle | AfterReads | None = None
        self._settling = False  # the deadline came; judged once the loop has read
        upstream.push(self)  # what came with the head arrives now: the timer is set after it
        if not self._core.finished:
            self._arm()

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
            if self._core.failure is not None and not self._gone:
                raise self._core.failure
            if self._core.finished:
                return
            await self._wait()

    async def direct(self, conduit: Conduit) -> bytes:
        """Write the rest of the answer to ``conduit`` from the network callbacks; at its
        end, return its last output (to be sent with the end of the body), or raise its
        failure once that output is written."""
        core = self._core
        if self._pending:
            out = b"".join(self._pending)
            self._pending.clear()
            if core.finished and core.failure is None:
                self._tail = out
            else:
                conduit.write(out)
        if self._held > HIGH_WATER:
            self._upstream.resume()
        self._held = 0
        self._conduit = conduit
        conduit.watch(self)
        if conduit.paused:
            self.pause_writing()
        try:
            while not core.finished:
                await self._wait()
        except asyncio.CancelledError:
            conduit.write(self._tail)  # cut short after the end: what was made goes first
            self._tail = b""
            raise
        finally:
            conduit.watch(None)
            self._conduit = None
        tail, self._tail = self._tail, b""
        if core.failure is not None:
            conduit.write(tail)
            raise core.failure
        return tail

    def ended(self) -> bool:
        """The answer ended well with what ``parts`` gave: no more will come."""
        core = self._core
        return core.finished and core.failure is None and not self._pending

    def close(self) -> None:
        """The attempt is over: no timer, and the upstream is let go."""
        self._stop_timer()
        self._upstream.release()

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # the upstream side (a Sink)

    def data(self, chunk: bytes) -> None:
        core = self._core
        if core.finished:
            return
        first = not core.got_data
        out = core.data(chunk, self._loop.time())
        conduit = self._conduit
        if conduit is not None and not core.finished:  # a token on its way: _after, inlined
            if out:
                conduit.write(out)
        else:
            self._after(out)
        if first and self._timer is not None:
            self._timer.cancel()  # the idle deadline may come before the first-byte one
            self._arm()

    def end(self, last: bytes = b"") -> None:
        core = self._core
        out = core.data(last, self._loop.time()) if last else b""
        self._after(out + core.end())  # after a failure in data, end() gives nothing

    def fail(self, exc: CortexError) -> None:
        core = self._core
        if core.finished or self._gone:
            return
        core.failure, core.finished = exc, True
        self._after(b"")

    # the client side (a Watcher)

    def pause_writing(self) -> None:
        self._paused_by_client = True
        self._upstream.pause()

    def resume_writing(self) -> None:
        self._paused_by_client = False
        self._core.resumed(self._loop.time())
        self._upstream.resume()

    def client_lost(self) -> None:
        self._gone = True  # the ASGI side is cancelled by the disconnect; nothing to report
        self._upstream.close()

    # inside

    def _after(self, out: bytes) -> None:
        finished = self._core.finished
        if out:
            conduit = self._conduit
            if conduit is None:
                self._emit(out)
            elif finished:
                self._tail += out  # written with the end of the body (or before the failure)
            else:
                conduit.write(out)
        if finished:
            self._stop_timer()
            self._upstream.pause()  # read no more; the attempt closes or keeps the connection
            self._wake()

    def _emit(self, out: bytes) -> None:
        """Keep ``out`` for the ASGI side."""
        self._pending.append(out)
        self._held += len(out)
        if self._held > HIGH_WATER:
            self._upstream.pause()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._settling = False
        self._timer = self._loop.call_at(self._core.due(), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        core = self._core
        if core.finished:
            return
        now = self._loop.time()
        if self._paused_by_client or self._held > HIGH_WATER:
            core.resumed(now)  # waiting for the client, not for the upstream
        elif now >= core.deadline() and not self._settling:
            self._settling = True  # what came in time may not have been read yet
            self._timer = AfterReads(self._loop, self._on_timer)
            return
        else:
            out = core.wake(now)
            if core.failure is not None:
                self._upstream.close()
            self._after(out)
        if not core.finished:
            self._arm()
