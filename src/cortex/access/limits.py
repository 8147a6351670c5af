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
instance that shares a Redis enforce one combined limit. What happens when Redis
stops answering is ``limiter.Limiter``'s to decide.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

WINDOW = 60.0  # seconds, for requests per minute
LEASE_TTL = 60.0  # seconds a concurrency slot outlives its last renewal
DAY = 86400
Limit = Literal["rpm", "tokens", "concurrent"]


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
