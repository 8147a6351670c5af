"""Stored responses, for ``store: true`` and ``previous_response_id``.

A record holds the response object and the conversation's items up to and
including its output (``request.conversation_items``), so a chain of responses
resolves in one read. Records belong to an owner (the API key's name, or "-"
with keys off): another owner's ids read as absent. Records are kept as their
JSON bytes, so the sizes the bounds count are exact and no caller can change a
stored record through a reference it kept.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ...errors import CortexError

ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    items: list[dict[str, Any]]  # input and output items of the whole conversation, in order


class ResponseTooLarge(CortexError):
    """A response and its conversation exceed what the store keeps for one response."""

    status = 413


class ResponseStore(Protocol):
    async def put(self, owner: str, response_id: str, record: StoredResponse) -> None:
        """Keep a record (replacing one of the same id); ``ResponseTooLarge`` if it cannot."""
        ...

    async def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool:
        """Whether there was such a record to delete."""
        ...

    async def close(self) -> None: ...


def encode(record: StoredResponse, limit: int) -> bytes:
    data = orjson.dumps({"response": record.response, "items": record.items})
    if len(data) > limit:
        raise ResponseTooLarge(
            f"the response and its conversation take {len(data)} bytes, more than the "
            f"{limit} bytes the response store keeps for one response"
        )
    return data


def decode(data: bytes | str) -> StoredResponse:
    parsed = orjson.loads(data)
    return StoredResponse(parsed["response"], parsed["items"])


def valid_id(response_id: str) -> bool:
    return ID.fullmatch(response_id) is not None


class MemoryStore:
    """Records in this process, bounded by count and total bytes (least recently used
    go first) and expiring ``ttl`` seconds after they were put."""

    def __init__(
        self,
        max_items: int,
        max_bytes: int,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_item_bytes: int | None = None,
    ) -> None:
        self._max_items, self._max_bytes, self._ttl, self._clock = max_items, max_bytes, ttl, clock
        self._item_limit = min(max_item_bytes or max_bytes, max_bytes)
        self._records: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> tuple[int, int]:
        """Records held and their bytes (expired ones included until they are swept)."""
        return len(self._records), self._bytes

    async def put(self, owner: str, response_id: str, record: StoredResponse) -> None:
        if not valid_id(response_id):
            raise ValueError(f"not a response id: {response_id!r}")
        data = encode(record, self._item_limit)
        self._drop((owner, response_id))
        self._records[owner, response_id] = (self._clock() + self._ttl, data)
        self._bytes += len(data)
        self._sweep()

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        key = (owner, response_id)
        found = self._records.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop(key)
            return None
        self._records.move_to_end(key)
        return decode(found[1])

    async def delete(self, owner: str, response_id: str) -> bool:
        key = (owner, response_id)
        alive = key in self._records and self._records[key][0] > self._clock()
        self._drop(key)
        return alive

    async def close(self) -> None:
        self._records.clear()

    def _drop(self, key: tuple[str, str]) -> None:
        found = self._records.pop(key, None)
        if found is not None:
            self._bytes -= len(found[1])

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (expires, _) in self._records.items() if expires <= now]:
            self._drop(key)
        while len(self._records) > self._max_items or self._bytes > self._max_bytes:
            self._drop(next(iter(self._records)))
