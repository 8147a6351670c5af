"""One response's way to its client below ASGI (a ``stream.splice.Conduit``).

Once a streaming response has started, the relay below ASGI (``stream/splice.py``)
writes the rest of its body here, in uvicorn's chunked framing, and is told when
the client's socket buffer fills or empties and when the client goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from .stream.splice import Watcher

if TYPE_CHECKING:
    from .protocol import BoundedHttpToolsProtocol


class ClientConduit:
    """One response's way to its client below ASGI."""

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
