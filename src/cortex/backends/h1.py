"""A lean HTTP/1.1 client for model servers: an asyncio protocol on httptools.

One ``Connection`` carries one exchange at a time and goes back to its pool
(``backends/pool.py``) when the answer ended cleanly on a kept-alive connection.
The body of an answer reaches its reader in one of two ways:

- ``read()``: chunks awaited one by one; at most ``HIGH_WATER`` bytes are held
  before the socket stops being read, so a slow reader slows the upstream;
- ``push(sink)``: the body bytes of each socket read handed to a sink at once,
  joined, inside the network callback, with no task switch per chunk
  (``stream/push.py``), so that what one read brought reaches the client in one
  write; the sink slows the upstream with ``pause()`` and ``resume()``.

A reused connection that the server closed while it sat idle fails before a
single byte of the answer arrives; that exchange is sent again once on a new
connection, which is safe because the server never read it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from ..deadline import Deadline
from ..errors import CortexError, UpstreamIncomplete, UpstreamProtocolError
from ..stream.ends import Sink
from .signals import Closed, Late, Stale, Stray, parse_failure

if TYPE_CHECKING:
    from .upload import Upload

logger = logging.getLogger("cortex.upstream")

HIGH_WATER = 256 * 1024  # bytes of an answer held for a reader before reading stops
BROKEN = "the connection to the model server broke in the middle of the answer"


class Connection(asyncio.Protocol):
    """One connection to a model server, and the state of its current exchange."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._paused = False
        self._fed: list[bytes] = []  # a pushed body's chunks from the read being parsed
        self._feeding = False  # a read is being parsed for a sink: its chunks go to _fed
        self.writer: Upload | None = None  # a streamed request body's, told of the buffer
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.started_at = 0.0
        self.encoding: str | None = None  # a Content-Encoding other than identity
        self.retry_after: int | None = None  # seconds, from an answer's Retry-After
        self.complete = False
        self._got_bytes = False
        self._head: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._error: CortexError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._sink: Sink | None = None
        self._framed = False  # a Content-Length or Transfer-Encoding header came
        self._until_close = False  # neither: the body ends when the connection does

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.complete:  # no request is outstanding: bytes now would be read as the next answer
            self._stray()
            return
        self._got_bytes = True
        self._feeding = self._sink is not None
        error: CortexError | None = None
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            error = parse_failure(exc)
        self._feeding = False
        fed = self._fed
        if fed and self._sink is not None:
            chunk = fed[0] if len(fed) == 1 else b"".join(fed)
            fed.clear()
            self._sink.data(chunk)
        if error is not None:
            self._fail(error)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost tells the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.complete:
            return
        if self._head is not None and not self._head.done():
            self._head.set_exception(Stale() if not self._got_bytes else Closed())
            return
        if self._until_close and exc is None:
            self.complete = True  # HTTP/1.0's way: the end of the connection ends the body
            if self._sink is not None:
                self._sink.end()
            self._wake()
            return
        self._fail(UpstreamIncomplete(BROKEN))

    def pause_writing(self) -> None:
        if self.writer is not None:  # other requests are small and written at once
            self.writer.pause_writing()

    def resume_writing(self) -> None:
        if self.writer is not None:
            self.writer.resume_writing()

    def _stray(self) -> None:
        """The server sent more than its answer: the connection cannot carry another."""
        logger.warning("the model server sent bytes after its answer; its connection is closed")
        self.lost = True
        self.close()

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:  # another message after the answer, in the same read
            self._stray()
            raise Stray  # stops the parser; data_received knows it

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in (11, 14, 16, 17):  # framing, encoding, and Retry-After
            lowered = name.lower()
            if lowered == b"content-length" or lowered == b"transfer-encoding":
                self._framed = True
            elif lowered == b"content-encoding" and value.strip().lower() != b"identity":
                self.encoding = value.strip().decode("latin-1")
            elif lowered == b"retry-after" and value.strip().isdigit():
                self.retry_after = int(value)

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        no_body = self.status in (204, 304)
        self._until_close = not self._framed and not no_body and self.status >= 200
        if self.status < 200:  # an interim answer (100 Continue): the real one follows
            return
        if self.encoding is not None and self.status < 300:
            message = f"the model server sent a compressed answer ({self.encoding}) though"
            self._fail(UpstreamProtocolError(f"{message} it was asked for identity"))
            return
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.status < 200:
            return
        if self._feeding:
            self._fed.append(body)
            return
        sink = self._sink
        if sink is not None:
            sink.data(body)
            return
        self._chunks.append(body)
        self._held += len(body)
        if self._held > HIGH_WATER:
            self.pause()
        if self._waiter is not None:  # else no reader waits yet: it finds the chunk itself
            self._wake()

    def on_message_complete(self) -> None:
        if self.status < 200:
            return
        self.complete = True
        if not self._parser.should_keep_alive() and self._transport is not None:
            self._transport.close()
        if self._sink is not None:
            fed = self._fed
            last = fed[0] if len(fed) == 1 else b"".join(fed)
            fed.clear()
            self._sink.end(last)
        self._wake()

    # the exchange

    def begin(self, request: bytes) -> asyncio.Future[None]:
        """Start an exchange with ``request`` (its head, or all of it); the future is
        done when the answer's head arrived (or with the exchange's failure)."""
        self._reset()
        self.resume()
        assert self._transport is not None
        self.started_at = self.loop.time()
        head = self._head = self.loop.create_future()
        self._transport.write(request)
        return head

    async def answered(self, head: asyncio.Future[None], deadline: float) -> None:
        """Wait for the head ``begin`` gave: return once the answer's status line and headers
        arrived, or raise ``Late`` at ``deadline`` (event-loop time) and close the connection."""
        timer = Deadline(self.loop, deadline, self._late)  # after reading what came in time
        try:
            await head
        finally:
            timer.cancel()

    def write(self, data: bytes) -> None:
        """More of a streamed request's body (``begin`` wrote its head)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _late(self) -> None:
        head = self._head
        if head is not None and not head.done():
            head.set_exception(Late())
            self.close()

    async def read(self) -> bytes:
        """The answer's next chunk (all it holds, joined), ``b""`` at its end."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._held = 0
        if self._paused:
            self.resume()
        return chunk

    def push(self, sink: Sink) -> None:
        """From now on each chunk goes straight to ``sink``, beginning with those held."""
        held = b"".join(self._chunks)
        self._chunks.clear()
        self._held = 0
        self._sink = sink
        if held:
            sink.data(held)
        if self._error is not None:
            sink.fail(self._error)
        elif self.complete:
            sink.end()
        elif self._paused:
            self.resume()

    def release(self) -> None:
        """The pushed answer's reader is done: what more comes is held, not pushed."""
        self._sink = None

    def pause(self) -> None:
        transport = self._transport
        if not self._paused and transport is not None and not transport.is_closing():
            self._paused = True
            transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    @property
    def reusable(self) -> bool:
        transport = self._transport
        open_ = transport is not None and not transport.is_closing()
        return self.complete and not self.lost and open_

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: CortexError) -> None:
        if self._error is not None:
            return
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        if self._transport is not None:
            self._transport.close()
        if self._sink is not None:
            self._sink.fail(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
