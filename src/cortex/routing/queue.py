"""The admission queue: requests waiting for a backend slot, served first in, first out.

It is bounded in length and in waiting time; a full queue or a wait too long is
a 503 with ``Retry-After``. Whoever frees a slot calls ``dispatch`` with a
function that picks a backend for a waiter, or none.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import Overloaded

T = TypeVar("T")


@dataclass
class Waiter(Generic[T]):
    model: str
    exclude: frozenset[str]
    future: asyncio.Future[T]
    since: float = field(default_factory=time.monotonic)


class AdmissionQueue(Generic[T]):
    def __init__(self, size: int, timeout: float) -> None:
        self._size = size
        self._timeout = timeout
        self._waiters: deque[Waiter[T]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait(self, model: str, exclude: frozenset[str]) -> T:
        """Wait for ``dispatch`` to hand this request a backend."""
        if len(self._waiters) >= self._size:
            raise Overloaded("every backend for this model is busy and the queue is full", 1)
        waiter = Waiter[T](model, exclude, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._timeout):
                return await waiter.future
        except TimeoutError:
            raise Overloaded(
                f"every backend for this model stayed busy for {self._timeout:g} s",
                self._timeout / 2,
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def dispatch(self, pick: Callable[[Waiter[T]], T | None]) -> None:
        """Hand backends to the oldest waiters ``pick`` finds one for; the rest wait on."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            chosen = pick(waiter)
            if chosen is not None:
                self._waiters.remove(waiter)
                waiter.future.set_result(chosen)

    def cancel_all(self) -> None:
        for waiter in self._waiters:
            waiter.future.cancel()
