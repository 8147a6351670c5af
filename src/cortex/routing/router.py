"""Many model servers behind one endpoint: which backend serves a request.

The rule, in order:
1. Only backends that list the model (when there is more than one backend;
   one backend gets every request and has the last word on its models).
2. Only backends whose circuit is closed, or half-open for a probe. A circuit
   opens after ``circuit_failures`` upstream faults in a row (refused, reset,
   5xx, timeouts; active checks count too) and half-opens ``circuit_cooldown``
   seconds later.
3. Prompt-prefix affinity: a conversation whose earlier turns match a recent
   request goes back to the backend that served it, so that backend's KV cache
   is reused, unless it carries more than ``affinity_slack`` streams (per unit
   of weight) above the least busy candidate.
4. Otherwise the fewest outstanding streams per unit of weight, ties in turn.
A backend at its ``max_concurrent`` takes no more; the request waits in one
bounded FIFO queue, served in order as slots free up on a backend for its
model, until ``queue_timeout``. A full queue or an expired wait is a 503.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..catalog import ModelEntry
from ..config import Settings
from ..errors import ModelNotFound, Overloaded, UpstreamUnreachable
from ..stream.relay import RelayLimits
from . import health
from .affinity import Affinity, prefix_keys
from .member import Lease, Member, listed
from .queue import AdmissionQueue, Waiter


class Router:
    def __init__(self, settings: Settings, members: list[Member], limits: RelayLimits) -> None:
        self._settings = settings
        self.members = members
        self._limits = limits
        self._queue = AdmissionQueue[Member](settings.queue_size, settings.queue_timeout)
        self._affinity = Affinity()
        self._turn = 0
        self._refreshed = False
        self._refresh_lock = asyncio.Lock()
        self._checker: asyncio.Task[None] | None = None

    # Catalogue and health

    async def refresh(self) -> dict[str, str | None]:
        """Fetch every backend's model list at once; each answer is also a health check.

        Returns each backend's problem, or None for those that answered.
        """
        async with self._refresh_lock:
            problems = await asyncio.gather(*(health.check(m, self._limits) for m in self.members))
            self._refreshed = True
        self._dispatch()
        return {m.name: problem for m, problem in zip(self.members, problems, strict=True)}

    def start(self) -> None:
        if len(self.members) > 1 or self._settings.backends:
            self._checker = asyncio.create_task(self._check_forever())

    async def _check_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._settings.health_interval)

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
        self._queue.cancel_all()

    def knows(self, model: str) -> bool:
        """Some backend lists this model (as of the last check)."""
        return any(
            m.models is not None and listed(model, [e.name for e in m.models]) for m in self.members
        )

    async def catalogue(self) -> list[ModelEntry]:
        """Every backend's models, merged without duplicates, in backend order.

        Raises UpstreamUnreachable when no backend answered: an empty list would
        say, wrongly, that the model servers have no models.
        """
        problems = await self.refresh()
        if problems and all(problems.values()):
            raise UpstreamUnreachable(
                "no model server answered: " + "; ".join(p for p in problems.values() if p)
            )
        seen: dict[str, ModelEntry] = {}
        for member in self.members:
            for entry in member.models or []:
                seen.setdefault(entry.name, entry)
        return list(seen.values())

    # Choosing

    async def acquire(
        self, model: str, messages: list[Any] | None = None, exclude: frozenset[str] = frozenset()
    ) -> Lease:
        if not self._refreshed and len(self.members) > 1:
            await self.refresh()
        candidates = [m for m in self.members if m.name not in exclude]
        if len(self.members) > 1:
            candidates = [m for m in candidates if m.serves(model)]
            if not candidates and not exclude:
                raise ModelNotFound(f'model "{model}" not found on any backend')
        now = time.monotonic()
        admitted = _open_to(model, candidates, now)
        if not admitted:
            wait = min((m.circuit.retry_in(now) for m in candidates), default=1.0)
            raise Overloaded("no healthy backend can serve this model right now", wait)
        # Affinity only matters with a choice: a lone backend skips hashing the conversation.
        keys = prefix_keys(model, messages) if len(self.members) > 1 else []
        member, affinity = self._choose(admitted, keys)
        waited = 0.0
        if member is None:
            member = await self._queue.wait(model, exclude)
            member.in_flight -= 1  # the slot was handed over reserved; it is counted below
            waited = time.monotonic() - now
        member.in_flight += 1
        member.requests += 1
        member.circuit.on_admit()
        if (model_circuit := member.model_circuits.get(model)) is not None:
            model_circuit.on_admit()
        if affinity:
            member.affinity_hits += 1
        if keys:
            self._affinity.remember(keys[0], member.name)
        return Lease(member, model, waited, affinity, self.release)

    def has_alternative(self, model: str, excluded: frozenset[str]) -> bool:
        now = time.monotonic()
        return any(
            m.name not in excluded and m.serves(model) and m.admits(model, now)
            for m in self.members
        )

    def _choose(self, admitted: list[Member], keys: list[bytes]) -> tuple[Member | None, bool]:
        roomy = [m for m in admitted if m.has_room()]
        if not roomy:
            return None, False
        least = min(m.load() for m in roomy)
        for key in keys[1:]:
            name = self._affinity.recall(key)
            preferred = next((m for m in roomy if m.name == name), None)
            if preferred is not None and preferred.load() <= least + self._settings.affinity_slack:
                return preferred, True
        tied = [m for m in roomy if m.load() == least]
        self._turn += 1
        return tied[self._turn % len(tied)], False

    def release(self, member: Member) -> None:
        member.in_flight -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the oldest waiters whose model a free backend serves."""
        self._queue.dispatch(self._slot_for)

    def _slot_for(self, waiter: Waiter[Member]) -> Member | None:
        serving = [
            m
            for m in self.members
            if m.name not in waiter.exclude and (len(self.members) == 1 or m.serves(waiter.model))
        ]
        now = time.monotonic()
        member = next((m for m in _open_to(waiter.model, serving, now) if m.has_room()), None)
        if member is not None:
            member.in_flight += 1  # reserved for this waiter
        return member

    @property
    def queued(self) -> int:
        return len(self._queue)


def _open_to(model: str, candidates: list[Member], now: float) -> list[Member]:
    """The candidates whose circuits admit ``model``; the only candidate whatever its
    circuits say: with nowhere else to go, the client gets the server's own answer."""
    admitted = [m for m in candidates if m.admits(model, now)]
    return admitted if admitted or len(candidates) != 1 else candidates
