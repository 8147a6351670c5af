"""A circuit breaker: after ``threshold`` faults in a row, no traffic for ``cooldown`` seconds.

Then it half-opens for one probe: a success closes it, a fault opens it again.
Time is passed in (``now``), so tests drive it with numbers, not sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CircuitState = Literal["closed", "open", "half-open"]


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

    def abandon(self) -> None:
        """A probe ended without a verdict (the client left): allow another."""
        if self.state == "half-open":
            self.probing = False

    def retry_in(self, now: float) -> float:
        return max(self.cooldown - (now - self.opened_at), 1.0)
