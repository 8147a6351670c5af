"""Per-key limits and usage: one ``LimitStore`` protocol, kept in memory or in Redis.

Three limits, each optional per key, checked together and atomically when a
request arrives (nothing is counted for a refused request):

- ``rpm``: requests in the last 60 seconds (a sliding window);
- ``tokens_per_day``: prompt + completion tokens since midnight UTC, from the
  model server's own counts (or the pieces streamed when it gives none). It is
  checked when a request starts, so the answer that crosses it is finished;
- ``concurrent``: requests in progress. Each holds a lease that expires
  ``LEASE_TTL`` seconds after its last renewal (the holder renews it every
  third of that), so a crashed instance cannot keep slots taken for long.

The memory store serves one process; ``limits_redis.RedisLimitStore`` lets every
instance that shares a Redis enforce one combined limit. When Redis stops
answering, ``Limiter`` logs one line and follows ``limits_on_redis_failure``:
``open`` serves without limits, ``closed`` refuses with 503, until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from ..config import KeyRecord
from ..errors import LimitsUnavailable, RateLimited

logger = logging.getLogger("cortex.limits")

WINDOW = 60.0  # seconds, for requests per minute
LEASE_TTL = 60.0  # seconds a concurrency slot outlives its last renewal
DAY = 86400
CLOSED_RETRY_AFTER = 5.0
RECHECK = 1.0  # seconds between tries while the store is down, so a hung Redis slows few
Limit = Literal["rpm", "tokens", "concurrent"]
FailurePolicy = Literal["open", "closed"]

MESSAGES: dict[Limit, str] = {
    "rpm": "requests per minute limit of {n} reached for key '{name}'",
    "tokens": "tokens per day limit of {n} reached for key '{name}'",
    "concurrent": "concurrent streams limit of {n} reached for key '{name}'",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: Limit
    retry_after: float  # seconds


@dataclass(slots=True)
class UsageRow:
    key: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0


class StoreUnavailable(Exception):
    """The shared store did not answer (Redis down, unreachable or timing out)."""


class LimitStore(Protocol):
    async def admit(
        self,
        name: str,
        rpm: int,
        tokens_per_day: int,
        concurrent: int,
        lease: str | None,
        request: str,
    ) -> Refusal | None:
        """Check every limit given (0: none) and, if all pass, count the request (as
        ``request``) and take the lease (when ``lease`` is given). Atomic."""
        ...

    async def refund(self, name: str, request: str, lease: str | None) -> None:
        """Uncount an admitted request that was refused after all, and free its lease."""
        ...

    async def renew(self, held: Mapping[str, Collection[str]], ttl: float) -> None: ...

    async def release(self, name: str, lease: str) -> None: ...

    async def record(
        self, name: str, model: str, prompt: int, completion: int, error: bool
    ) -> None:
        """Count one finished request and add its tokens to today's total."""
        ...

    async def usage(self) -> tuple[list[UsageRow], dict[str, int]]:
        """Every key and model's counts, and each key's tokens today."""
        ...

    async def close(self) -> None: ...


def today(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // DAY)


def until_midnight(now: float | None = None) -> float:
    now = time.time() if now is None else now
    return DAY - now % DAY


class MemoryLimitStore:
    """Limits for one process."""

    def __init__(self) -> None:
        self._recent: dict[str, deque[tuple[float, str]]] = defaultdict(deque)
        self._leases: dict[str, set[str]] = defaultdict(set)
        self._tokens: dict[tuple[str, int], int] = defaultdict(int)
        self._usage: dict[tuple[str, str], UsageRow] = {}

    async def admit(
        self,
        name: str,
        rpm: int,
        tokens_per_day: int,
        concurrent: int,
        lease: str | None,
        request: str,
    ) -> Refusal | None:
        now = time.monotonic()
        recent = self._recent[name]
        while recent and recent[0][0] <= now - WINDOW:
            recent.popleft()
        if rpm and len(recent) >= rpm:
            return Refusal("rpm", recent[0][0] + WINDOW - now)
        if tokens_per_day and self._tokens[name, today()] >= tokens_per_day:
            return Refusal("tokens", until_midnight())
        if concurrent and lease is not None:
            if len(self._leases[name]) >= concurrent:
                return Refusal("concurrent", 1.0)
            self._leases[name].add(lease)
        if rpm:
            recent.append((now, request))
        return None

    async def refund(self, name: str, request: str, lease: str | None) -> None:
        recent = self._recent[name]
        for entry in recent:
            if entry[1] == request:
                recent.remove(entry)
                break
        if lease is not None:
            self._leases[name].discard(lease)

    async def renew(self, held: Mapping[str, Collection[str]], ttl: float) -> None:
        pass  # leases here live and die with the process

    async def release(self, name: str, lease: str) -> None:
        self._leases[name].discard(lease)

    async def record(
        self, name: str, model: str, prompt: int, completion: int, error: bool
    ) -> None:
        day = today()
        for key in [k for k in self._tokens if k[1] < day - 1]:
            del self._tokens[key]
        self._tokens[name, day] += prompt + completion
        row = self._usage.get((name, model))
        if row is None:
            row = self._usage[name, model] = UsageRow(name, model)
        row.requests += 1
        row.prompt_tokens += prompt
        row.completion_tokens += completion
        row.errors += int(error)

    async def usage(self) -> tuple[list[UsageRow], dict[str, int]]:
        day = today()
        used = {name: n for (name, d), n in self._tokens.items() if d == day}
        return [replace(r) for r in self._usage.values()], used

    async def close(self) -> None:
        pass


class Outage:
    """One log line when the shared store stops answering, one when it is back."""

    def __init__(self, where: str, policy: FailurePolicy) -> None:
        self._where = where
        self._policy = policy
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if self.down:
            return
        self.down = True
        consequence = (
            "serving without per-key limits until it is back"
            if self._policy == "open"
            else "refusing keyed requests with 503 until it is back"
        )
        reason = str(exc) or type(exc).__name__
        logger.error(
            "Redis at %s is not answering (%s): %s (limits_on_redis_failure = %s)",
            self._where,
            reason,
            consequence,
            self._policy,
        )

    def ok(self) -> None:
        if self.down:
            self.down = False
            logger.warning("Redis at %s answers again: per-key limits are enforced", self._where)


class Limiter:
    """A store, the policy for when it fails, and the concurrency leases this process holds."""

    def __init__(self, store: LimitStore, policy: FailurePolicy, outage: Outage) -> None:
        self._store = store
        self._policy = policy
        self._outage = outage
        self._held: dict[str, set[str]] = defaultdict(set)
        self._renewer: asyncio.Task[None] | None = None
        self._recheck_at = 0.0

    async def admit(self, key: KeyRecord, request: str, *, answer: bool) -> str | None:
        """Count a request for ``key`` (as ``request``, which ``refund`` names again); raise
        RateLimited if a limit refuses it.

        Only ``answer`` requests (POSTs: generation, embeddings) take a concurrency
        slot and are held to the daily tokens. Returns the slot's lease, if any.
        """
        lease = uuid.uuid4().hex if answer and key.concurrent else None
        try:
            if self._waiting():
                raise StoreUnavailable("still down")
            refusal = await self._store.admit(
                key.name,
                key.rpm or 0,
                (key.tokens_per_day or 0) if answer else 0,
                key.concurrent or 0,
                lease,
                request,
            )
        except StoreUnavailable as exc:
            self._failed(exc)
            if self._policy == "closed":
                raise LimitsUnavailable(
                    "per-key limits cannot be checked right now", CLOSED_RETRY_AFTER
                ) from None
            return None
        self._outage.ok()
        if refusal is not None:
            n = {"rpm": key.rpm, "tokens": key.tokens_per_day, "concurrent": key.concurrent}
            message = MESSAGES[refusal.limit].format(n=n[refusal.limit], name=key.name)
            raise RateLimited(message, refusal.retry_after)
        if lease is not None:
            self._held[key.name].add(lease)
        return lease

    async def finish(
        self,
        name: str,
        lease: str | None,
        model: str,
        prompt: int,
        completion: int,
        error: bool,
    ) -> None:
        if lease is not None:
            self._held[name].discard(lease)
        if self._waiting():
            return  # the lease, if any, expires by itself
        try:
            if lease is not None:
                await self._store.release(name, lease)
            await self._store.record(name, model, prompt, completion, error)
        except StoreUnavailable as exc:
            self._failed(exc)

    async def refund(self, name: str, request: str, lease: str | None) -> None:
        """A request admitted, then refused (a model its key may not use): it counts
        toward nothing, neither the minute's requests nor usage, and its slot is free."""
        if lease is not None:
            self._held[name].discard(lease)
        if self._waiting():
            return
        try:
            await self._store.refund(name, request, lease)
        except StoreUnavailable as exc:
            self._failed(exc)

    async def usage(self) -> tuple[list[UsageRow], dict[str, int]]:
        try:
            return await self._store.usage()
        except StoreUnavailable as exc:
            self._failed(exc)
            raise LimitsUnavailable("usage cannot be read right now", CLOSED_RETRY_AFTER) from None

    def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew_leases())

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._store.close()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL / 3)
            held = {name: set(leases) for name, leases in self._held.items() if leases}
            if not held:
                continue
            try:
                await self._store.renew(held, LEASE_TTL)
            except StoreUnavailable as exc:
                self._failed(exc)

    def _waiting(self) -> bool:
        """The store failed less than RECHECK seconds ago: do not wait on it again yet."""
        return self._outage.down and time.monotonic() < self._recheck_at

    def _failed(self, exc: StoreUnavailable) -> None:
        self._outage.failed(exc)
        self._recheck_at = time.monotonic() + RECHECK
