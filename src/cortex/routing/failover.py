"""The one rule for trying another backend after a fault.

A request may be tried on up to ``max_attempts`` backends, each a different
one, and only after a fault that is the backend's own (``CortexError.retryable``)
and while some other backend could take it. Streams follow the rule only
until their first byte has reached the client; after that, the fault is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CortexError
from .router import Router


@dataclass
class Failover:
    router: Router
    model: str
    max_attempts: int
    excluded: frozenset[str] = field(default_factory=frozenset)  # the backends that failed
    attempts: int = 0

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
