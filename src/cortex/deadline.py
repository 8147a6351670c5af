"""A deadline judged only after the event loop has read what arrived in time.

uvloop runs the timers that fell due before it reads the sockets that became
readable meanwhile. After a stall in some other callback (a big read to
translate, a garbage collection, a thread starved of the CPU) a timer may fire
while the bytes it waits for already sit in the kernel's buffer, and a model
server that answered in time would be reported silent. ``AfterReads`` calls
back a few turns later, once the loop has read its sockets and run the tasks
those reads woke (asyncio's own loop reads first; the turns cost nothing);
``Deadline`` is a timer that does so when its time comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

TURNS = 3  # the timer's turn, the reads', and the turn of the tasks they woke


class AfterReads:
    """``callback`` once the loop has read its sockets; ``cancel`` as a timer's."""

    __slots__ = ("_callback", "_handle", "_left", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._left = TURNS
        self._handle = loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._left -= 1
        if self._left:
            self._handle = self._loop.call_soon(self._turn)
        else:
            self._callback()

    def cancel(self) -> None:
        self._handle.cancel()


class Deadline:
    """``callback`` at ``when`` (event-loop time), once the loop has read what came before."""

    __slots__ = ("_callback", "_handle", "_loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | AfterReads = loop.call_at(when, self._due)

    def _due(self) -> None:
        self._handle = AfterReads(self._loop, self._callback)

    def cancel(self) -> None:
        self._handle.cancel()
