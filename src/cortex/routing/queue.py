"""The admission queue: requests waiting for a backend slot, served fairly across API keys.

Waiters are served fairly across parties (API keys; one party without keys), by
start-time fair queuing: a waiter's tag is one more than the later of its
party's previous tag and the tag last served, and the lowest tag goes first
(ties by arrival). So one key with a hundred queued requests cannot starve
another with one, and within a party it is first in, first out.

The queue is bounded in length and in waiting time; a full queue or a wait too
long is a 503 whose ``Retry-After`` comes from the rate at which the queue has
drained lately. Whoever frees a slot calls ``dispatch`` with a function that
picks a backend for a waiter, or none.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import Overloaded
from .prefix import Prompt

T = TypeVar("T")
DRAIN_SAMPLE = 32  # recent hand-overs the drain rate is measured on


@dataclass(eq=False)
class Waiter(Generic[T]):
    model: str
    exclude: frozenset[str]
    future: asyncio.Future[T]
    party: str = ""
    prompt: Prompt | None = None  # for the scorer, under the state rule
    position: int = 1  # 1: next to be served, when it joined
    tag: tuple[int, int] = (0, 0)  # (fair-queuing tag, arrival): served lowest first
    since: float = field(default_factory=time.monotonic)


class AdmissionQueue(Generic[T]):
    def __init__(
        self, size: int, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._size = size
        self._timeout = timeout
        self._clock = clock
        self._waiters: list[Waiter[T]] = []  # kept sorted by tag
        self._last_tag: dict[str, int] = {}  # parties with waiters, or served ahead of the rest
        self._served_tag = 0
        self._arrivals = 0
        self._handed: deque[float] = deque(maxlen=DRAIN_SAMPLE)

    def __len__(self) -> int:
        return len(self._waiters)

    def order(self) -> list[Waiter[T]]:
        """Waiters in the order they are served."""
        return list(self._waiters)

    def _next_tag(self, party: str) -> int:
        return max(self._served_tag, self._last_tag.get(party, 0)) + 1

    def position(self, party: str) -> int:
        """Where a new waiter of ``party`` would stand (1: next)."""
        return self._position(self._next_tag(party))

    def _position(self, tag: int) -> int:
        return 1 + sum(1 for w in self._waiters if w.tag[0] <= tag)

    def retry_after(self) -> float:
        """Seconds until the queue has drained at the rate measured lately."""
        handed = self._handed
        if len(handed) < 2 or handed[-1] <= handed[0]:
            return self._timeout / 2
        rate = (len(handed) - 1) / (handed[-1] - handed[0])
        return min(max(1.0, math.ceil(len(self._waiters) / rate)), self._timeout)

    async def wait(
        self,
        model: str,
        exclude: frozenset[str],
        party: str = "",
        prompt: Prompt | None = None,
        give_back: Callable[[T], None] = lambda _: None,
    ) -> T:
        """Wait for ``dispatch`` to hand this request a backend. A backend handed over just
        as the wait ended otherwise (the client left, the timeout came in the same turn) goes
        to ``give_back``, or the slot reserved for it would stay taken."""
        if len(self._waiters) >= self._size:
            raise Overloaded(
                "every backend for this model is busy and the queue is full",
                self.retry_after(),
                queue_position=len(self._waiters) + 1,
            )
        tag = self._next_tag(party)
        self._arrivals += 1
        future = asyncio.get_running_loop().create_future()
        waiter = Waiter[T](
            model, exclude, future, party, prompt, self._position(tag), (tag, self._arrivals)
        )
        self._last_tag[party] = tag
        bisect.insort(self._waiters, waiter, key=lambda w: w.tag)
        try:
            async with asyncio.timeout(self._timeout):
                return await waiter.future
        except BaseException as exc:
            future = waiter.future
            if future.done() and not future.cancelled():
                give_back(future.result())
            if isinstance(exc, TimeoutError):
                raise Overloaded(
                    f"every backend for this model stayed busy for {self._timeout:g} s",
                    self.retry_after(),
                    queue_position=waiter.position,
                ) from None
            raise
        finally:
            self._remove(waiter)

    def dispatch(self, pick: Callable[[Waiter[T]], T | None]) -> None:
        """Hand backends to waiters in turn order, for those ``pick`` finds one for."""
        for waiter in self.order():
            if waiter.future.done():
                continue
            chosen = pick(waiter)
            if chosen is not None:
                self._served_tag = max(self._served_tag, waiter.tag[0])
                self._remove(waiter)
                self._handed.append(self._clock())
                waiter.future.set_result(chosen)

    def cancel_all(self) -> None:
        for waiter in self.order():
            waiter.future.cancel()

    def _remove(self, waiter: Waiter[T]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        # A party no further ahead than what was served gains nothing by being remembered.
        waiting = {w.party for w in self._waiters}
        for party, tag in list(self._last_tag.items()):
            if tag <= self._served_tag and party not in waiting:
                del self._last_tag[party]
