"""One response's way to its client below ASGI (a ``stream.push.Conduit``).

Once a streaming response has started, the relay below ASGI (``stream/push.py``)
writes the rest of its body here, in uvicorn's chunked framing, bypassing every
wrapper of ``send`` between the response and the server. That is right only
when those wrappers let the body through as it was sent, so the conduit sees
what reaches the server (``passed``) and opens only when it can tell:

- the head reached the server with chunked framing and no ``Content-Encoding``
  (a wrapper that compresses, or answers with a length, keeps the conduit shut);
- the last body message reached the server from the task that asks to open it
  (a wrapper that hands messages to another task, as Starlette's
  ``BaseHTTPMiddleware`` does, may still be holding some);
- no body message before it was emptied while more was to come (a wrapper that
  strips bodies, as HEAD's does).

Shut, the relay goes on through ``send``, slower and right. A body message that
was to be followed by more and reaches the server after direct writes began
(held back by a wrapper) is refused with ``RuntimeError``: uvicorn closes the
connection rather than send the client bytes out of order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from .stream.ends import Watcher

HELD_BACK = "a wrapper of send held back part of a body that the relay already wrote past"


class Connection(Protocol):
    """What a conduit needs of the client's connection (``protocol.BoundedHttpToolsProtocol``)."""

    flow: FlowControl
    loop: asyncio.AbstractEventLoop
    conduits: list[ClientConduit]  # those that want to hear when writing pauses or the client goes


class ClientConduit:
    """One response's way to its client below ASGI."""

    __slots__ = (
        "_cycle",
        "_on_lost",
        "_plain",
        "_protocol",
        "_sender",
        "_transport",
        "_watcher",
        "_wrote",
    )

    def __init__(self, protocol: Connection, cycle: RequestResponseCycle) -> None:
        self._protocol = protocol
        self._cycle = cycle
        # the connection's own: body messages pass the cycle's first, which sends the head
        self._transport = cycle.transport
        self._watcher: Watcher | None = None
        self._on_lost: Callable[[], None] | None = None
        self._plain = False  # the head went out with no encoding; no body was emptied
        self._sender: asyncio.Task[object] | None = None  # of the last body message
        self._wrote = False

    @property
    def open(self) -> bool:
        """The response started, chunked, and has not ended, and what reached the client
        is what was sent: its body may be written here."""
        cycle = self._cycle
        ended = cycle.response_complete or cycle.disconnected
        if cycle.chunked_encoding is not True or ended or not self._plain:
            return False
        return self._sender is not None and self._sender is self._task()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._protocol.loop

    @property
    def gone(self) -> bool:
        return self._cycle.disconnected

    @property
    def body_arrived(self) -> bool:
        """The request's whole body is in (``receive`` will not wait for it)."""
        return not self._cycle.more_body

    @property
    def paused(self) -> bool:
        return self._protocol.flow.write_paused

    def write(self, data: bytes) -> None:
        cycle = self._cycle
        if data and not cycle.disconnected and not cycle.response_complete:
            self._wrote = True
            self._transport.write(b"%x\r\n%s\r\n" % (len(data), data))

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

    def passed(self, message: ASGISendEvent) -> None:
        """A message from the app is about to reach the server."""
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            if not isinstance(headers, list | tuple):  # an iterable read once, here and by uvicorn
                headers = message["headers"] = list(headers)
            self._plain = True
            for name, value in headers:
                if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
                    self._plain = False
        elif message["type"] == "http.response.body":
            if message.get("more_body", False):
                if self._wrote:
                    raise RuntimeError(HELD_BACK)
                if not message.get("body", b""):
                    self._plain = False
            self._sender = self._task()

    def _task(self) -> asyncio.Task[object] | None:
        # given the loop, current_task need not ask for the running one (a getpid call)
        return asyncio.current_task(self._protocol.loop)

    def pause_writing(self) -> None:
        if self._watcher is not None:
            self._watcher.pause_writing()

    def resume_writing(self) -> None:
        if self._watcher is not None:
            self._watcher.resume_writing()

    def finish(self) -> None:
        """The app returned: let go of the task and whoever listens, so that nothing of
        this request is kept alive by a loop of references (a young collection's work)."""
        self._sender = None
        self._watcher = self._on_lost = None
        self._listen()

    def client_lost(self) -> None:
        if self._watcher is not None:
            self._watcher.client_lost()
        if self._on_lost is not None:
            self._on_lost()


def conduit_of(scope: Mapping[str, Any]) -> ClientConduit | None:
    """The request's conduit, where ``protocol.py`` put one in its scope."""
    if scope["type"] != "http":
        return None
    conduit = scope.get("extensions", {}).get("cortex.conduit", {}).get("conduit")
    return conduit if isinstance(conduit, ClientConduit) else None
