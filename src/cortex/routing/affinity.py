"""Prompt-prefix affinity: which backend last served a conversation, so its next turn goes back.

Each conversation is fingerprinted by hashing the model and its messages in
order; the whole conversation is remembered, and the next turn of it (the same
messages plus the answer and a new question) finds it by its shorter prefixes.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

ENTRIES = 10_000
TTL = 600.0


class Affinity:
    """A bounded, expiring map from conversation fingerprints to backend names."""

    def __init__(
        self,
        entries: int = ENTRIES,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries = entries
        self._ttl = ttl
        self._clock = clock
        self._homes: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def remember(self, key: bytes, name: str) -> None:
        self._homes[key] = (name, self._clock())
        self._homes.move_to_end(key)
        while len(self._homes) > self._entries:
            self._homes.popitem(last=False)

    def recall(self, key: bytes) -> str | None:
        found = self._homes.get(key)
        if found is None or self._clock() - found[1] > self._ttl:
            return None
        return found[0]

    def __len__(self) -> int:
        return len(self._homes)


def prefix_keys(model: str, messages: list[Any] | None) -> list[bytes]:
    """Fingerprints of the conversation: whole, then without its last one and two turns."""
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
