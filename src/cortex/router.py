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
import hashlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .backends.http import HTTPBackend
from .backends.local import LocalBackend
from .catalog import ModelEntry, from_openai, from_tags
from .config import BackendSettings, Settings, redact_url
from .errors import (
    CortexError,
    ModelNotFound,
    Overloaded,
    UpstreamIncomplete,
    UpstreamProtocolError,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from .stream.relay import RelayLimits, read_whole

logger = logging.getLogger("cortex.router")

Backend = HTTPBackend | LocalBackend
CircuitState = Literal["closed", "open", "half-open"]
AFFINITY_ENTRIES = 10_000
AFFINITY_TTL = 600.0
MODEL_CIRCUITS = 256  # per backend; closed ones are forgotten first
CHECK_TIMEOUT = 5.0


@dataclass
class Circuit:
    threshold: int
    cooldown: float
    state: CircuitState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def admits(self, now: float) -> bool:
        if self.state == "open" and now - self.opened_at >= self.cooldown:
            self.state, self.probing = "half-open", False
        if self.state == "half-open":
            return not self.probing
        return self.state == "closed"

    def on_admit(self) -> None:
        if self.state == "half-open":
            self.probing = True

    def success(self) -> None:
        self.state, self.failures, self.probing = "closed", 0, False

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.threshold:
            self.state, self.opened_at, self.probing = "open", now, False

    def retry_in(self, now: float) -> float:
        return max(self.cooldown - (now - self.opened_at), 1.0)


@dataclass
class Member:
    """A backend as the router sees it."""

    config: BackendSettings
    backend: Backend
    circuit: Circuit
    in_flight: int = 0
    models: list[ModelEntry] | None = None  # None until its catalogue was fetched
    raw_tags: bytes | None = None  # an Ollama backend's own /api/tags answer
    requests: int = 0
    failures: int = 0
    affinity_hits: int = 0
    first_byte_ms: float | None = None  # moving average of time to first byte
    # Faults a server reports in an answer (a 5xx) are its model's: one circuit per model.
    model_circuits: dict[str, Circuit] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    def serves(self, model: str) -> bool:
        allowed = self.config.models
        if allowed is not None and not _listed(model, allowed):
            return False
        return self.models is None or _listed(model, [e.name for e in self.models])

    def admits(self, model: str, now: float) -> bool:
        """Neither the backend's circuit nor this model's on it is open."""
        if not self.circuit.admits(now):
            return False
        circuit = self.model_circuits.get(model)
        return circuit is None or circuit.admits(now)

    def model_circuit(self, model: str) -> Circuit:
        circuit = self.model_circuits.get(model)
        if circuit is None:
            if len(self.model_circuits) >= MODEL_CIRCUITS:
                self.model_circuits = {
                    k: c for k, c in self.model_circuits.items() if c.state != "closed"
                }
            circuit = self.model_circuits[model] = Circuit(
                self.circuit.threshold, self.circuit.cooldown
            )
        return circuit

    def has_room(self) -> bool:
        limit = self.config.max_concurrent
        return limit is None or self.in_flight < limit

    def load(self) -> float:
        return self.in_flight / self.config.weight

    def status(self, show_url: bool = False) -> dict[str, Any]:
        """The backend's state for ``/cortex/backends``; its URL only if ``show_url``."""
        status = self._status()
        if not show_url:
            del status["url"]
        if isinstance(self.backend, LocalBackend):
            return {
                **status,
                "healthy": self.backend.problem is None,
                "state": self.backend.state,
                "problem": self.backend.problem,
                "restarts": self.backend.process.restarts,
            }
        return status

    def _status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": "embedded" if self.config.kind == "local" else redact_url(self.config.url),
            "kind": self.config.kind,
            "healthy": self.circuit.state == "closed",
            "circuit": self.circuit.state,
            "in_flight": self.in_flight,
            "max_concurrent": self.config.max_concurrent,
            "weight": self.config.weight,
            "models": None if self.models is None else [e.name for e in self.models],
            "requests": self.requests,
            "failures": self.failures,
            "affinity_hits": self.affinity_hits,
            "first_byte_ms": None if self.first_byte_ms is None else round(self.first_byte_ms, 2),
            "failing_models": {
                model: c.state for model, c in self.model_circuits.items() if c.state != "closed"
            },
        }


def _listed(model: str, names: Sequence[str]) -> bool:
    return model in names or (":" not in model and f"{model}:latest" in names)


def is_backend_fault(exc: CortexError) -> bool:
    """Faults that say the backend is unwell (and that another backend may not share)."""
    if isinstance(exc, UpstreamStatus):
        return exc.status >= 500
    return isinstance(
        exc, UpstreamUnreachable | UpstreamTimeout | UpstreamIncomplete | UpstreamProtocolError
    )


@dataclass
class Waiter:
    model: str
    exclude: frozenset[str]
    future: asyncio.Future[Member]
    since: float = field(default_factory=time.monotonic)


class Lease:
    """One request's hold on a backend slot; release it exactly once."""

    def __init__(
        self, router: Router, member: Member, model: str, waited: float, affinity: bool
    ) -> None:
        self._router = router
        self.member = member
        self.model = model
        self.waited = waited
        self.affinity = affinity
        self._released = False

    @property
    def backend(self) -> Backend:
        return self.member.backend

    def succeeded(self) -> None:
        self.member.circuit.success()
        circuit = self.member.model_circuits.get(self.model)
        if circuit is not None:
            circuit.success()

    def first_byte(self, seconds: float) -> None:
        member = self.member
        self.succeeded()
        ms = seconds * 1000
        member.first_byte_ms = (
            ms if member.first_byte_ms is None else 0.8 * member.first_byte_ms + 0.2 * ms
        )

    def failed(self, exc: CortexError) -> None:
        if not is_backend_fault(exc):
            return
        self.member.failures += 1
        # A server that answered with a 5xx is up; the fault is its model's (a runner that
        # died, a model that does not fit), and must not shut out its other models.
        answered = isinstance(exc, UpstreamStatus)
        circuit = self.member.model_circuit(self.model) if answered else self.member.circuit
        circuit.failure(time.monotonic())
        logger.warning("backend %s failed on %s: %s", self.member.name, self.model, exc.message)

    def release(self) -> None:
        if not self._released:
            self._released = True
            for circuit in (self.member.circuit, self.member.model_circuits.get(self.model)):
                if circuit is not None and circuit.state == "half-open":
                    circuit.probing = False  # the probe ended without a verdict; allow another
            self._router.release(self.member)


class Router:
    def __init__(self, settings: Settings, members: list[Member], limits: RelayLimits) -> None:
        self._settings = settings
        self.members = members
        self._limits = limits
        self._waiters: deque[Waiter] = deque()
        self._affinity: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
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
            problems = await asyncio.gather(*(self._check(m) for m in self.members))
            self._refreshed = True
        return {m.name: problem for m, problem in zip(self.members, problems, strict=True)}

    async def _check(self, member: Member) -> str | None:
        if isinstance(member.backend, LocalBackend):
            member.models = from_tags(await self._get(member, "/api/tags"))
            return member.backend.problem
        path = "/models" if member.config.kind == "openai" else "/api/tags"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                raw = await self._get(member, path)
            member.models = from_openai(raw) if member.config.kind == "openai" else from_tags(raw)
            member.raw_tags = raw if member.config.kind == "ollama" else None
        except (CortexError, TimeoutError) as exc:
            if member.circuit.state != "open":
                logger.warning("backend %s failed its check: %s", member.name, _reason(exc))
            member.circuit.failure(time.monotonic())
            return _reason(exc)
        if member.circuit.state != "closed":
            logger.info("backend %s is back", member.name)
        member.circuit.success()
        self._dispatch()
        return None

    async def _get(self, member: Member, path: str) -> bytes:
        async with member.backend.open("GET", path) as body:
            return await read_whole(body, self._limits)

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
        for waiter in self._waiters:
            waiter.future.cancel()

    def knows(self, model: str) -> bool:
        """Some backend lists this model (as of the last check)."""
        return any(
            m.models is not None and _listed(model, [e.name for e in m.models])
            for m in self.members
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
        admitted = self._open_to(model, candidates, now)
        if not admitted:
            wait = min((m.circuit.retry_in(now) for m in candidates), default=1.0)
            raise Overloaded("no healthy backend can serve this model right now", wait)
        # Affinity only matters with a choice: a lone backend skips hashing the conversation.
        keys = _prefix_keys(model, messages) if len(self.members) > 1 else []
        member, affinity = self._choose(admitted, keys)
        waited = 0.0
        if member is None:
            member = await self._wait(model, exclude)
            waited = time.monotonic() - now
        member.in_flight += 1
        member.requests += 1
        member.circuit.on_admit()
        if (model_circuit := member.model_circuits.get(model)) is not None:
            model_circuit.on_admit()
        if affinity:
            member.affinity_hits += 1
        if keys:
            self._remember(keys[0], member.name)
        return Lease(self, member, model, waited, affinity)

    @staticmethod
    def _open_to(model: str, candidates: list[Member], now: float) -> list[Member]:
        """The candidates whose circuits admit ``model``; the only candidate whatever its
        circuits say: with nowhere else to go, the client gets the server's own answer."""
        admitted = [m for m in candidates if m.admits(model, now)]
        return admitted if admitted or len(candidates) != 1 else candidates

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
            name = self._recall(key)
            preferred = next((m for m in roomy if m.name == name), None)
            if preferred is not None and preferred.load() <= least + self._settings.affinity_slack:
                return preferred, True
        tied = [m for m in roomy if m.load() == least]
        self._turn += 1
        return tied[self._turn % len(tied)], False

    async def _wait(self, model: str, exclude: frozenset[str]) -> Member:
        if len(self._waiters) >= self._settings.queue_size:
            raise Overloaded("every backend for this model is busy and the queue is full", 1)
        waiter = Waiter(model, exclude, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._settings.queue_timeout):
                member = await waiter.future
        except TimeoutError:
            raise Overloaded(
                f"every backend for this model stayed busy for {self._settings.queue_timeout:g} s",
                self._settings.queue_timeout / 2,
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        member.in_flight -= 1  # the slot was handed over reserved; acquire counts it again
        return member

    def release(self, member: Member) -> None:
        member.in_flight -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the oldest waiters whose model a free backend serves."""
        now = time.monotonic()
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            serving = [
                m
                for m in self.members
                if m.name not in waiter.exclude
                and (len(self.members) == 1 or m.serves(waiter.model))
            ]
            member = next(
                (m for m in self._open_to(waiter.model, serving, now) if m.has_room()), None
            )
            if member is not None:
                member.in_flight += 1  # reserved for this waiter
                self._waiters.remove(waiter)
                waiter.future.set_result(member)

    @property
    def queued(self) -> int:
        return len(self._waiters)

    # Affinity

    def _remember(self, key: bytes, name: str) -> None:
        self._affinity[key] = (name, time.monotonic())
        self._affinity.move_to_end(key)
        while len(self._affinity) > AFFINITY_ENTRIES:
            self._affinity.popitem(last=False)

    def _recall(self, key: bytes) -> str | None:
        found = self._affinity.get(key)
        if found is None or time.monotonic() - found[1] > AFFINITY_TTL:
            return None
        return found[0]


def _prefix_keys(model: str, messages: list[Any] | None) -> list[bytes]:
    """Fingerprints of the conversation: whole, then without its last one and two turns.

    The whole conversation is remembered; the next turn of it (the same
    messages plus the answer and a new question) finds it by its shorter prefixes.
    """
    if not messages:
        return []
    digests = []
    running = hashlib.blake2b(model.encode(), digest_size=16)
    for message in messages:
        piece = (
            message
            if not isinstance(message, dict)
            else [message.get("role"), message.get("content")]
        )
        running.update(orjson.dumps(piece))
        digests.append(running.copy().digest())
    keys = [digests[-1]]
    keys += [digests[i] for i in (len(digests) - 2, len(digests) - 3) if i >= 0]
    return keys


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, CortexError) else "no answer in time"
