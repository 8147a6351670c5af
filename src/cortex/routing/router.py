"""Many model servers behind one endpoint: which backend serves a request.

The rule, in order:
1. Only backends that list the model (when there is more than one backend;
   one backend gets every request and has the last word on its models).
2. Only backends whose circuit is closed, or half-open for a probe. A circuit
   opens after ``circuit_failures`` upstream faults in a row (refused, reset,
   5xx, timeouts; active checks count too) and half-opens ``circuit_cooldown``
   seconds later.
3. The ``routing`` rule among those with room: ``state`` (the default, in
   scorer.py) weighs models in memory, cold loads, prompt prefixes and each
   conversation's rendezvous home; ``affinity`` sends a conversation whose earlier
   turns match a recent request back to the backend that served it, unless it
   carries more than ``affinity_slack`` streams (per unit of weight) above the
   least busy candidate; ``round-robin`` takes turns.
4. Otherwise the fewest outstanding streams per unit of weight, ties in turn.
A backend at its ``max_concurrent`` takes no more; the request waits in one
bounded queue, fair across API keys (queue.py), served as slots free up on a
backend for its model (chosen by the same rule), until ``queue_timeout``. A full
queue or an expired wait is a 503. With ``redis_url`` set, ``state`` also learns
where other instances sent a prompt (shared.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..catalog import ModelEntry
from ..config import RoutingRule, Settings
from ..errors import ModelNotFound, Overloaded, UpstreamUnreachable
from ..modelname import canonical, pick
from ..stream.core import RelayLimits
from . import health, scorer
from .affinity import Affinity, prefix_keys
from .member import Lease, Member
from .prefix import Prompt, prompt_of
from .queue import AdmissionQueue, Waiter
from .shared import SharedPrefixes


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
        self._lookups: dict[str, asyncio.Task[None]] = {}  # /api/ps or engine reads after answers
        url = settings.shared_routing_url
        self._shared = SharedPrefixes(url) if url and settings.routing == "state" else None

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
        for lookup in self._lookups.values():
            lookup.cancel()
        self._queue.cancel_all()
        if self._shared is not None:
            await self._shared.close()

    def knows(self, model: str) -> bool:
        """Some backend lists this model (as of the last check)."""
        return any(
            m.models is not None and pick((e.name for e in m.models), model) is not None
            for m in self.members
        )

    async def catalogue(self) -> list[ModelEntry]:
        """Every backend's models, merged without duplicates (by ``modelname.canonical``, the
        first backend's spelling shown), in backend order.

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
                seen.setdefault(canonical(entry.name), entry)
        return list(seen.values())

    # Choosing

    async def acquire(
        self,
        model: str,
        messages: list[Any] | None = None,
        exclude: frozenset[str] = frozenset(),
        party: str = "",
    ) -> Lease:
        """A slot on the backend for this request; ``party`` (its API key's name) is whom
        the queue is fair between. The lease's model, like every name the router keeps, is
        the ``modelname.canonical`` one."""
        asked, model = model, canonical(model)
        if not self._refreshed and len(self.members) > 1:
            await self.refresh()
        candidates = [m for m in self.members if m.name not in exclude]
        now = time.monotonic()
        if len(self.members) > 1:
            candidates = [m for m in candidates if m.serves(model)]
            if not exclude and not any(_may_list(m, now) for m in candidates):
                raise ModelNotFound(f'model "{asked}" not found on any backend')
        admitted = _open_to(model, candidates, now)
        if not admitted:
            wait = min((m.circuit.retry_in(now) for m in candidates), default=1.0)
            raise Overloaded("no healthy backend can serve this model right now", wait)
        # Affinity only matters with a choice: a lone backend skips hashing the conversation.
        rule = self._settings.routing if len(self.members) > 1 else "least-outstanding"
        prompt = prompt_of(model, messages) if rule == "state" else None
        if prompt is not None and self._shared is not None:
            prompt = await self._shared.lookup(prompt)
        keys = prefix_keys(model, messages) if rule == "affinity" else []
        member, affinity = self._choose(model, admitted, rule, prompt, keys)
        waited, position = 0.0, 0
        if member is None:
            position = self._queue.position(party)
            member = await self._queue.wait(model, exclude, party, prompt, self._unreserve)
            member.in_flight -= 1  # the slot was handed over reserved; it is counted below
            waited = time.monotonic() - now
        member.in_flight += 1
        member.requests += 1
        member.circuit.on_admit()
        if (model_circuit := member.model_circuits.get(model)) is not None:
            model_circuit.on_admit()
        if affinity:
            member.affinity_hits += 1
        if prompt is not None:
            member.prefixes.add(prompt)
            member.homes.touch(prompt.conversation, now)
            if self._shared is not None:
                self._shared.record(prompt, member.name)
        if keys:
            self._affinity.remember(keys[0], member.name)
        residency = member.residency
        cold = residency.loaded is not None and not residency.is_loaded(model)
        if cold:
            residency.loading.add(model)
        residency.started(model)
        return Lease(member, model, waited, affinity, self.release, position, cold)

    def has_alternative(self, model: str, excluded: frozenset[str]) -> bool:
        now, model = time.monotonic(), canonical(model)
        return any(
            m.name not in excluded and m.serves(model) and m.admits(model, now)
            for m in self.members
        )

    def _choose(
        self,
        model: str,
        admitted: list[Member],
        rule: RoutingRule,
        prompt: Prompt | None,
        keys: list[bytes],
    ) -> tuple[Member | None, bool]:
        roomy = [m for m in admitted if m.has_room()]
        if not roomy:
            return None, False
        self._turn += 1
        if len(roomy) == 1 and rule != "state" and len(keys) < 2:
            return roomy[0], False  # no choice to make: no load to compare, no affinity to find
        if rule == "round-robin":
            return roomy[self._turn % len(roomy)], False
        if rule == "state":
            choice = self._score(model, roomy, prompt)
            return choice.member, choice.hit
        least = min(m.load() for m in roomy)
        for key in keys[1:]:
            name = self._affinity.recall(key)
            preferred = next((m for m in roomy if m.name == name), None)
            if preferred is not None and preferred.load() <= least + self._settings.affinity_slack:
                return preferred, True
        tied = [m for m in roomy if m.load() == least]
        return tied[self._turn % len(tied)], False

    def _score(self, model: str, roomy: list[Member], prompt: Prompt | None) -> scorer.Choice:
        s = self._settings
        now = time.monotonic()
        turn = self._turn
        return scorer.choose(
            model, roomy, prompt, s.affinity_slack, s.cold_slack, turn, now, s.balance_homes
        )

    def release(self, lease: Lease) -> None:
        member = lease.member
        member.in_flight -= 1
        member.residency.ended(lease.model)
        self._dispatch()
        known = member.residency.loaded is not None or member.engine is not None
        if known and len(self.members) > 1:  # a lone backend has no choice to inform
            self._look_up_state(member)

    def _unreserve(self, member: Member) -> None:
        """A slot reserved for a waiter that left before it could take it."""
        member.in_flight -= 1
        self._dispatch()

    def _look_up_state(self, member: Member) -> None:
        """Read the backend's ``/api/ps`` or engine figures again, once at a time: an answer
        may have loaded or evicted a model, or freed a slot."""
        running = self._lookups.get(member.name)
        if running is None or running.done():
            self._lookups[member.name] = asyncio.create_task(health.state(member, self._limits))

    def _dispatch(self) -> None:
        """Hand free slots to the oldest waiters whose model a free backend serves."""
        self._queue.dispatch(self._slot_for)

    def _slot_for(self, waiter: Waiter[Member]) -> Member | None:
        serving = [
            m
            for m in self.members
            if m.name not in waiter.exclude and (len(self.members) == 1 or m.serves(waiter.model))
        ]
        roomy = [m for m in _open_to(waiter.model, serving, time.monotonic()) if m.has_room()]
        member: Member | None = None
        if roomy and self._settings.routing == "state" and len(self.members) > 1:
            self._turn += 1
            member = self._score(waiter.model, roomy, waiter.prompt).member
        elif roomy:
            member = roomy[0]
        if member is not None:
            member.in_flight += 1  # reserved for this waiter
        return member

    @property
    def queued(self) -> int:
        return len(self._queue)


def _may_list(member: Member, now: float) -> bool:
    """The member lists the model, or may: its catalogue is unknown but it is not known
    to be down. One whose circuit is open and whose models were never read lists
    nothing: a name no other backend has is then a 404, not its connection error."""
    return member.models is not None or member.circuit.state != "open" or member.circuit.admits(now)


def _open_to(model: str, candidates: list[Member], now: float) -> list[Member]:
    """The candidates whose circuits admit ``model``; the only candidate whatever its
    circuits say: with nowhere else to go, the client gets the server's own answer."""
    admitted = [m for m in candidates if m.admits(model, now)]
    return admitted if admitted or len(candidates) != 1 else candidates
