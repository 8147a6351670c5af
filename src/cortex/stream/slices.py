"""A pushed upstream answer handed on in slices, one per turn of the event loop.

A network read may hold hundreds of kilobytes of an answer that a model server
sends without pause. Translating all of it in the callback that read it keeps
every other stream waiting for the whole read: with one such answer beside them,
the others' first tokens waited seconds (bench/concurrency.py, "neighbours").
``Sliced`` stands between the connection and the ``Push``: a chunk of at most
``SLICE`` bytes goes straight through; a bigger one is handed on a slice a turn
while reading the upstream pauses, so the loop serves the other connections in
between. The end or a failure follows the last slice, in order.
"""

from __future__ import annotations

import asyncio

from ..errors import CortexError
from .ends import Pushing, Sink

SLICE = 16 * 1024  # bytes handed on in one turn: about a millisecond of translation
NO_SINK = "the connection pushes only once a sink is set"


class _Released:
    """What a released answer's connection becomes: asking it anything does nothing."""

    started_at = 0.0

    def push(self, sink: Sink) -> None:
        pass

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def close(self) -> None:
        pass

    def release(self) -> None:
        pass


_RELEASED = _Released()


class Sliced:
    """``upstream`` as a ``Pushing``, whose chunks reach the sink a slice a turn."""

    def __init__(self, upstream: Pushing) -> None:
        self._upstream = upstream
        self.started_at = upstream.started_at
        self._sink: Sink | None = None
        self._backlog = bytearray()
        self._end: bytes | None = None  # the end came after the backlog (its last bytes kept)
        self._failure: CortexError | None = None  # a failure came after the backlog
        self._turn: asyncio.Handle | None = None
        self._wants_pause = False  # the sink asked for reading to pause

    # Pushing, for the sink

    def push(self, sink: Sink) -> None:
        self._sink = sink
        self._upstream.push(self)

    def pause(self) -> None:
        self._wants_pause = True
        self._upstream.pause()

    def resume(self) -> None:
        self._wants_pause = False
        if self._turn is None:
            self._upstream.resume()

    def close(self) -> None:
        self._drop()
        self._upstream.close()

    def release(self) -> None:
        # A backlog's next turn would pause the connection after it went back to its
        # pool, and the next answer on it would never be read.
        self._drop()
        self._upstream.release()
        self._upstream = _RELEASED  # nor may the sink pause or resume it now
        self._sink = None  # the sink holds this answer: no loop of references is left

    # Sink, for the connection

    def data(self, chunk: bytes) -> None:
        if self._turn is None and len(chunk) <= SLICE:  # a token's chunk: one call less
            sink = self._sink
            assert sink is not None, NO_SINK
            sink.data(chunk)
            return
        self._backlog += chunk
        self._later()

    def end(self, last: bytes = b"") -> None:
        if self._turn is None and len(last) <= SLICE:
            self._sink_now().end(last)
            return
        self._backlog += last
        self._end = b""
        self._later()

    def fail(self, exc: CortexError) -> None:
        if self._turn is None:
            self._sink_now().fail(exc)
        else:
            self._failure = exc

    # inside

    def _sink_now(self) -> Sink:
        assert self._sink is not None, NO_SINK
        return self._sink

    def _later(self) -> None:
        if self._turn is None:
            self._upstream.pause()
            self._turn = asyncio.get_running_loop().call_soon(self._next_slice)

    def _next_slice(self) -> None:
        self._turn = None
        backlog = self._backlog
        piece = bytes(backlog[:SLICE])
        del backlog[:SLICE]
        sink = self._sink_now()
        if backlog:
            sink.data(piece)  # which may close this answer: then the backlog is gone
            if self._backlog:
                self._later()
        elif self._end is not None:
            self._end = None
            sink.end(piece)
        else:
            failure, self._failure = self._failure, None
            sink.data(piece)
            if failure is not None:
                sink.fail(failure)
            elif not self._wants_pause:
                self._upstream.resume()

    def _drop(self) -> None:
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        self._backlog.clear()
        self._end = self._failure = None
