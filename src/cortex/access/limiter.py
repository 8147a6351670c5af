"""The limits as a request meets them: a ``LimitStore`` (``limits.py``), the concurrency
leases this process holds (renewed while their requests run), and what to do when the
shared store stops answering: ``Outage`` logs one line, and ``limits_on_redis_failure``
says ``open`` (serve without limits) or ``closed`` (refuse with 503), until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from typing import Literal

from ..config import KeyRecord
from ..errors import LimitsUnavailable, RateLimited
from .limits import LEASE_TTL, Limit, LimitStore, StoreUnavailable, UsageRow

logger = logging.getLogger("cortex.limits")

CLOSED_RETRY_AFTER = 5.0
RECHECK = 1.0  # seconds between tries while the store is down, so a hung Redis slows few
FailurePolicy = Literal["open", "closed"]

MESSAGES: dict[Limit, str] = {
    "rpm": "requests per minute limit of {n} reached for key '{name}'",
    "tokens": "tokens per day limit of {n} reached for key '{name}'",
    "concurrent": "concurrent streams limit of {n} reached for key '{name}'",
}


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
