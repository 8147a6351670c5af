"""The parties a pushed upstream answer passes between (``push.py`` drives it): the
upstream that pushes its chunks (``backends.h1.Connection``, or ``slices.Sliced`` before
it), where the chunks go (a ``Sink``), the client's connection once the response started
(a ``Conduit``, from ``protocol.py``) and who it tells of its buffer and of the client
going (a ``Watcher``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ..errors import CortexError


class Pushing(Protocol):
    """An upstream answer that pushes its chunks (``backends.h1.Connection``)."""

    started_at: float

    def push(self, sink: Sink) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> None: ...

    def release(self) -> None:
        """The answer is done with: push nothing more, and touch the connection no more
        (it may go back to its pool and carry another answer)."""
        ...


class Sink(Protocol):
    """Where a pushed body goes (``Push``, or ``Sliced`` before it). None of these may raise."""

    def data(self, chunk: bytes) -> None: ...

    def end(self, last: bytes = b"") -> None:
        """The body ended; ``last`` is its final chunk when it came in the same read."""
        ...

    def fail(self, exc: CortexError) -> None: ...


class Conduit(Protocol):
    """The client's connection, for a response that has started (``protocol.py``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop that serves the connection."""
        ...

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
