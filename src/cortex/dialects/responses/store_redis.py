"""Stored responses in Redis, shared by every Córtex instance that points at it.

One string per response, its record's JSON, expiring with Redis's own ``EX``:

    cortex:response:{OWNER}:{ID}    OWNER is a hash of the owner's name, so a key's
                                    name never shows which API key made it

Redis failures propagate as ``redis.exceptions.RedisError``: the API layer decides
whether a response that cannot be stored fails or is answered unstored.
"""

from __future__ import annotations

import hashlib
import math

from redis.asyncio import Redis

from .store import StoredResponse, decode, encode, valid_id


class RedisStore:
    def __init__(self, redis: Redis, ttl: float, max_bytes_per_item: int) -> None:
        self._redis = redis
        self._ttl = max(1, math.ceil(ttl))
        self._limit = max_bytes_per_item

    async def put(self, owner: str, response_id: str, record: StoredResponse) -> None:
        if not valid_id(response_id):
            raise ValueError(f"not a response id: {response_id!r}")
        await self._redis.set(key(owner, response_id), encode(record, self._limit), ex=self._ttl)

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        if not valid_id(response_id):
            return None
        data = await self._redis.get(key(owner, response_id))
        return None if data is None else decode(data)

    async def delete(self, owner: str, response_id: str) -> bool:
        if not valid_id(response_id):
            return False
        return bool(await self._redis.delete(key(owner, response_id)))

    async def close(self) -> None:
        await self._redis.aclose()


def key(owner: str, response_id: str) -> str:
    owner_hash = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"cortex:response:{owner_hash}:{response_id}"
