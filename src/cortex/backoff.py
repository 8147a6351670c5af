"""The pause before a supervised process that died is started again.

Both supervisors use it: the embedded model's (``embedded/supervisor.py``) and the
workers' (``workers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_PAUSE = 0.5  # seconds before the first restart, doubling after each death in a row
LONGEST_PAUSE = 30.0
STEADY_AFTER = 60.0  # a process that served this long before it died starts the count over


@dataclass
class Backoff:
    """``first``, doubled for each death in a row up to ``longest``; a process that ran for
    ``steady`` seconds before it died starts the count over."""

    first: float = FIRST_PAUSE
    longest: float = LONGEST_PAUSE
    steady: float = STEADY_AFTER
    deaths: int = 0

    def after(self, lived: float) -> float:
        if lived >= self.steady:
            self.deaths = 0
        pause = min(self.longest, self.first * 2.0**self.deaths)
        self.deaths += 1
        return pause
