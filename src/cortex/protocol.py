"""uvicorn's httptools protocol with the two bounds it lacks, and a way below ASGI.

A request head (request line and headers) may be at most ``max_head`` bytes and
must arrive within ``head_timeout`` seconds of the connection or of its first
byte; otherwise the connection gets a short error and is closed. Without them a client could make
Córtex buffer an endless header, or hold a connection open by trickling one
(slow-loris). Bodies are bounded in size and time where they are read
(``api/body.py``). uvicorn builds one protocol per connection from what
``protocol_factory`` returns.

Each request's scope also carries a ``ClientConduit`` (``scope["extensions"]
["cortex.conduit"]["conduit"]``, see ``conduit.py``): once a streaming response has
started, the relay below ASGI (``stream/push.py``) writes the rest of its body
through it, and is told when the client's socket buffer fills or empties and when
the client goes. Every message the app sends passes the conduit first, so it opens
only when the wrappers of ``send`` left the body as it was.

A response's head waits for the first bytes of its body (or the end of the event
loop's turn, when they do not follow at once), so that both reach the client in one
write rather than two (``HeadWithBody``).

Beyond uvicorn's public interface this reads (pinned in ``pyproject.toml``, checked
by ``tests/test_protocol_internals.py``): the protocol's ``app``, ``loop``,
``transport``, ``flow``, ``scope`` and ``cycle``, the cycle made in
``on_headers_complete`` before its app runs, the cycle's ``transport``,
``chunked_encoding``, ``response_complete`` and ``disconnected``, its chunked
framing, that the cycle writes to its ``transport`` (replaced here) with ``write``,
``close`` and ``is_closing`` only and the head first, and ``FlowControl.write_paused``.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from .conduit import ClientConduit, conduit_of
from .errors import CortexError, reply


def protocol_factory(max_head: int, head_timeout: float) -> partial[BoundedHttpToolsProtocol]:
    """What uvicorn's ``http`` option takes: it builds each connection's protocol with
    these bounds, and pickles for worker processes."""
    return partial(BoundedHttpToolsProtocol, max_head=max_head, head_timeout=head_timeout)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        max_head: int,
        head_timeout: float,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head = max_head
        self.head_timeout = head_timeout
        self._app = self.app
        self.app = self._run_app
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
        self._arm_head_timer()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What comes next on a kept-alive connection is the next request's head: counted
        # from here, not from its first parsed byte, which comes after its packet was counted.
        self._reading_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_head_timer()
        _host_of_absolute_form(self.url, self.headers)
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:
            return
        head_with_body: Any = HeadWithBody(cycle.transport, self.loop)  # a Transport's subset
        if self.scope["http_version"] == "1.0":  # no conduit: the relay goes through send
            unchunked: Any = Unchunked(head_with_body)  # a Transport's subset too
            cycle.transport = unchunked
            return
        conduit: dict[object, object] = {"conduit": ClientConduit(self, cycle)}
        self.scope.setdefault("extensions", {})["cortex.conduit"] = conduit
        cycle.transport = head_with_body

    async def _run_app(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        conduit = conduit_of(scope)
        if conduit is None:
            await self._app(scope, receive, send)
            return

        async def seen(message: ASGISendEvent) -> None:
            conduit.passed(message)
            await send(message)

        try:
            await self._app(scope, receive, seen)
        finally:
            conduit.finish()
            # the scope and the conduit held each other: a young collection's work
            extensions: dict[str, Any] = scope["extensions"]  # type: ignore[typeddict-item]
            extensions.pop("cortex.conduit", None)

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
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


class HeadWithBody:
    """A response cycle's transport: the first write (the head, or a ``100 Continue``)
    is held until the next one, which carries it, or until the end of the event loop's
    turn; closing sends what is held first."""

    __slots__ = ("_held", "_loop", "_transport", "_wrote")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._wrote = False

    def write(self, data: bytes) -> None:
        if not self._wrote:
            self._wrote = True
            self._held = data
            self._loop.call_soon(self.flush)
            return
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


CHUNKED = b"transfer-encoding: chunked\r\n"  # as uvicorn writes it in a head


class Unchunked:
    """An HTTP/1.0 client's transport. Such a client reads no chunked framing (RFC 9112,
    6.1), so the head goes out without ``transfer-encoding: chunked`` and each chunk
    uvicorn writes as its bare bytes: the body ends where the connection closes, as
    uvicorn closes every HTTP/1.0 one after its response."""

    __slots__ = ("_chunked", "_transport")

    def __init__(self, transport: HeadWithBody) -> None:
        self._transport = transport
        self._chunked = False

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/"):  # a head; a chunk starts with its size
            self._chunked = CHUNKED in data
            data = data.replace(CHUNKED, b"", 1)
        elif self._chunked:
            data = unframed(data)
        if data:
            self._transport.write(data)

    def close(self) -> None:
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def unframed(data: bytes) -> bytes:
    """The bytes of the whole chunks uvicorn writes at once (``size CRLF data CRLF``, the
    last one of size 0), without their framing."""
    pieces = []
    at = 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        size = int(data[at:end], 16)
        if size == 0:
            break
        pieces.append(data[end + 2 : end + 2 + size])
        at = end + 2 + size + 2
    return b"".join(pieces)


def _host_of_absolute_form(target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A request line in absolute form (``GET http://other.host/… HTTP/1.1``) names its host
    there, and HTTP says the ``Host`` header is then ignored (RFC 9112, 3.2.2): the host guard
    must judge the one the request really names, so it becomes the only ``Host``."""
    scheme, separator, rest = target.partition(b"://")
    if not separator or scheme.lower() not in (b"http", b"https"):
        return
    authority = rest.split(b"/", 1)[0].split(b"?", 1)[0].rpartition(b"@")[2]
    headers[:] = [(name, value) for name, value in headers if name != b"host"]
    headers.append((b"host", authority))
