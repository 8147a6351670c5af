"""uvicorn's httptools protocol with the two bounds it lacks.

A request head (request line and headers) may be at most ``max_head`` bytes and
must arrive within ``head_timeout`` seconds of the connection or of its first
byte; otherwise the connection gets a short error and is closed. Without them a client could make
Córtex buffer an endless header, or hold a connection open by trickling one
(slow-loris). Bodies are bounded in size and time where they are read
(``api/body.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import CortexError, reply


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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

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
