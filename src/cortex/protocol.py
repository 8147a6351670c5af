"""uvicorn's httptools protocol with the two bounds it lacks.

A request head (request line and headers) may be at most ``max_head`` bytes and
must arrive within ``head_timeout`` seconds of the connection or of its first
byte; otherwise the connection gets a short error and is closed. Without them a client could make
Córtex buffer an endless header, or hold a connection open by trickling one
(slow-loris). Bodies are bounded in size and time where they are read
(``api/body.py``).

Each request's scope also carries a ``ClientConduit`` (``scope["extensions"]
["cortex.conduit"]["conduit"]``): once a streaming response has started, the relay below
ASGI (``stream/splice.py``) writes the rest of its body through it, in uvicorn's
chunked framing, and is told when the client's socket buffer fills or empties
and when the client goes. Wrappers of ``send`` may therefore touch only
``http.response.start``, as every one in Córtex does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from .errors import CortexError, reply
from .stream.push import Watcher


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """The bounds come from attributes set on uvicorn's config (see ``server.py``),
    which uvicorn hands to each protocol and pickles for each worker process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head: int = getattr(self.config, "cortex_max_head", 64 * 1024)
        self.head_timeout: float = getattr(self.config, "cortex_head_timeout", 10.0)
        self._head_bytes = 0
        self._reading_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self.conduits: list[ClientConduit] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
        for conduit in list(self.conduits):
            conduit.client_lost()

    def pause_writing(self) -> None:
        super().pause_writing()
        for conduit in list(self.conduits):
            conduit.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        for conduit in list(self.conduits):
            conduit.resume_writing()

    def data_received(self, data: bytes) -> None:
        if not self._reading_head:
            super().data_received(data)
            return
        room = self.max_head - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        super().data_received(data[:room])  # parse up to the bound, then judge
        if self._reading_head:
            self._refuse(431, "Request Header Fields Too Large", "the request head is too large")
            return
        if not self.transport.is_closing():
            super().data_received(data[room:])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_head_timer()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            conduit = {"conduit": ClientConduit(self, cycle)}
            self.scope["extensions"] = {"cortex.conduit": conduit}  # type: ignore[dict-item]

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._reading_head and self._head_bytes:
            self._refuse(408, "Request Timeout", "the request head took too long to arrive")
        elif self._reading_head:
            self.transport.close()  # an idle connection that never sent a request

    def _refuse(self, status: int, reason: str, message: str) -> None:
        if self.transport.is_closing():
            return
        # The path is not known yet, so the answer is in Ollama's shape, the simpler one.
        status, headers, body = reply(CortexError(message, status=status), "ollama")
        head = b"".join(b"%s: %s\r\n" % pair for pair in headers)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n%sconnection: close\r\n\r\n%s"
            % (status, reason.encode(), head, body)
        )
        self.transport.close()


class ClientConduit:
    """One response's way to its client below ASGI (a ``stream.push.Conduit``)."""

    __slots__ = ("_cycle", "_on_lost", "_protocol", "_watcher")

    def __init__(self, protocol: BoundedHttpToolsProtocol, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = cycle
        self._watcher: Watcher | None = None
        self._on_lost: Callable[[], None] | None = None

    @property
    def open(self) -> bool:
        """The response started, chunked, and has not ended: its body may be written here."""
        cycle = self._cycle
        ended = cycle.response_complete or cycle.disconnected
        return cycle.chunked_encoding is True and not ended

    @property
    def gone(self) -> bool:
        return self._cycle.disconnected

    @property
    def paused(self) -> bool:
        return self._protocol.flow.write_paused

    def write(self, data: bytes) -> None:
        cycle = self._cycle
        if data and not cycle.disconnected and not cycle.response_complete:
            cycle.transport.write(b"%x\r\n%s\r\n" % (len(data), data))

    def watch(self, watcher: Watcher | None) -> None:
        self._watcher = watcher
        self._listen()

    def on_lost(self, callback: Callable[[], None] | None) -> None:
        self._on_lost = callback
        self._listen()

    def _listen(self) -> None:
        conduits = self._protocol.conduits
        wanted = self._watcher is not None or self._on_lost is not None
        if wanted and self not in conduits:
            conduits.append(self)
        elif not wanted and self in conduits:
            conduits.remove(self)

    # told by the protocol

    def pause_writing(self) -> None:
        if self._watcher is not None:
            self._watcher.pause_writing()

    def resume_writing(self) -> None:
        if self._watcher is not None:
            self._watcher.resume_writing()

    def client_lost(self) -> None:
        if self._watcher is not None:
            self._watcher.client_lost()
        if self._on_lost is not None:
            self._on_lost()
