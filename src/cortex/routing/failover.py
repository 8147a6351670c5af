"""The one rule for trying another backend after a fault.

A request may be tried on up to ``max_attempts`` backends, each a different
one, and only after a fault that is the backend's own (``CortexError.retryable``)
and while some other backend could take it. Streams follow the rule only
until their first byte has reached the client; after that, the fault is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import CortexError
from .member import Lease
from .router import Router


@dataclass
class Failover:
    router: Router
    model: str
    max_attempts: int
    excluded: frozenset[str] = field(default_factory=frozenset)  # the backends that failed
    attempts: int = 0
    failed_on: str | None = None  # the backend of the attempt that just failed

    def lease(self, prompt: Any = None, party: str = "") -> Leased:
        """One attempt: a backend leased for the request (none that failed it), marked
        failed if the attempt raises a ``CortexError``, released at the end either way."""
        return Leased(self, prompt, party)

    def retry_after(self, exc: CortexError) -> bool:
        """Whether the attempt that just failed with ``exc`` should be followed by another."""
        return self.failed_on is not None and self.retry(exc, self.failed_on)

    def started(self) -> None:
        """One more backend was leased for the request."""
        self.attempts += 1

    def retry(self, exc: CortexError, backend: str) -> bool:
        """Whether, after ``exc`` on ``backend``, the request should go to another one."""
        if not exc.retryable:
            return False
        self.excluded |= {backend}
        return self.attempts < self.max_attempts and self.router.has_alternative(
            self.model, self.excluded
        )


class Leased:
    """``Failover.lease``'s block: a class, not a generator, as it is on every request's
    way to the upstream (no async generator to start, hook and finalize)."""

    __slots__ = ("_failover", "_lease", "_party", "_prompt")

    def __init__(self, failover: Failover, prompt: Any, party: str) -> None:
        self._failover = failover
        self._prompt = prompt
        self._party = party
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        failover = self._failover
        failover.failed_on = None
        router = failover.router
        lease = await router.acquire(failover.model, self._prompt, failover.excluded, self._party)
        self._lease = lease
        failover.started()
        return lease

    async def __aexit__(self, _: object, exc: BaseException | None, __: object) -> None:
        lease = self._lease
        if lease is None:
            return
        try:
            if isinstance(exc, CortexError):
                lease.failed(exc)
                self._failover.failed_on = lease.member.name
        finally:
            lease.release()
