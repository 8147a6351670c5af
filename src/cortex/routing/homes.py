"""The conversations a backend is home to, lately: what bounds how unevenly they spread.

Rendezvous hashing gives each conversation a home that every instance agrees on, but with
few conversations chance alone can give one backend many and another none (six
conversations on three backends went 3/0/3 in a test). So a new conversation skips a home
that already has its even share of the conversations active in the last ``WINDOW``
seconds (bounded-load rendezvous hashing: the share rounded up, counting the newcomer),
and is remembered where it went, so its later turns follow it there even when its prompt
is too short to leave a prefix behind. Instances that share no state may then place a new
conversation differently; with ``redis_url`` they learn where it went (``shared.py``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

WINDOW = 600.0  # seconds without a turn after which a conversation no longer counts
REMEMBERED = 4096  # conversations kept per backend


class Homes:
    def __init__(self, window: float = WINDOW, remembered: int = REMEMBERED) -> None:
        self._window = window
        self._remembered = remembered
        self._last: OrderedDict[bytes, float] = OrderedDict()  # least recently used first

    def has(self, conversation: bytes, now: float) -> bool:
        self._expire(now)
        return conversation in self._last

    def active(self, now: float) -> int:
        self._expire(now)
        return len(self._last)

    def touch(self, conversation: bytes, now: float) -> None:
        self._last[conversation] = now
        self._last.move_to_end(conversation)
        while len(self._last) > self._remembered:
            self._last.popitem(last=False)

    def _expire(self, now: float) -> None:
        last = self._last
        while last and next(iter(last.values())) < now - self._window:
            last.popitem(last=False)


def bound(active: list[int]) -> int:
    """The most conversations a backend may be home to, the newcomer included."""
    return math.ceil((sum(active) + 1) / len(active))
