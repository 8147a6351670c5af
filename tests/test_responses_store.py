"""The store behind ``store: true`` and ``previous_response_id``: bounds, expiry, owners."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from cortex.dialects.responses.store import (
    MemoryStore,
    ResponseTooLarge,
    StoredResponse,
)
from cortex.dialects.responses.store_redis import RedisStore, key
from tests.redis_server import RedisServer, running_redis

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(text: str = "hi", size: int = 0) -> StoredResponse:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": text + "x" * size}
    ]
    return StoredResponse({"id": "resp_1", "object": "response", "output": []}, items)


def run(step: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(step())


def test_a_record_comes_back_as_it_was_put() -> None:
    store = MemoryStore(max_items=10, max_bytes=10_000, ttl=60)
    kept = record()
    run(lambda: store.put("alice", "resp_1", kept))
    assert run(lambda: store.get("alice", "resp_1")) == kept
    kept.items.clear()  # the store keeps its own copy
    got = run(lambda: store.get("alice", "resp_1"))
    assert got is not None and got.items


def test_another_owner_sees_nothing_and_cannot_delete() -> None:
    store = MemoryStore(max_items=10, max_bytes=10_000, ttl=60)
    run(lambda: store.put("alice", "resp_1", record()))
    assert run(lambda: store.get("bob", "resp_1")) is None
    assert run(lambda: store.delete("bob", "resp_1")) is False
    assert run(lambda: store.delete("alice", "resp_1")) is True
    assert run(lambda: store.get("alice", "resp_1")) is None
    assert run(lambda: store.delete("alice", "resp_1")) is False


def test_records_expire_after_their_ttl() -> None:
    clock = Clock()
    store = MemoryStore(max_items=10, max_bytes=10_000, ttl=60, clock=clock)
    run(lambda: store.put("alice", "resp_1", record()))
    clock.now += 59.9
    assert run(lambda: store.get("alice", "resp_1")) is not None
    clock.now += 0.1
    assert run(lambda: store.get("alice", "resp_1")) is None
    assert store.size == (0, 0)


def test_expired_records_are_swept_when_another_is_put() -> None:
    clock = Clock()
    store = MemoryStore(max_items=10, max_bytes=10_000, ttl=60, clock=clock)
    run(lambda: store.put("alice", "resp_1", record()))
    clock.now += 61
    run(lambda: store.put("alice", "resp_2", record()))
    assert store.size[0] == 1


def test_the_least_recently_used_goes_first_past_the_count() -> None:
    store = MemoryStore(max_items=2, max_bytes=10_000, ttl=60)
    run(lambda: store.put("alice", "resp_1", record()))
    run(lambda: store.put("alice", "resp_2", record()))
    run(lambda: store.get("alice", "resp_1"))
    run(lambda: store.put("alice", "resp_3", record()))
    assert run(lambda: store.get("alice", "resp_2")) is None
    assert run(lambda: store.get("alice", "resp_1")) is not None
    assert run(lambda: store.get("alice", "resp_3")) is not None


def test_total_bytes_are_bounded_and_one_record_may_not_exceed_them() -> None:
    store = MemoryStore(max_items=100, max_bytes=1_000, ttl=60)

    async def put_five() -> None:
        for n in range(5):
            await store.put("alice", f"resp_{n}", record(size=300))

    run(put_five)
    held, size = store.size
    assert size <= 1_000 and held == 2
    assert run(lambda: store.get("alice", "resp_4")) is not None
    with pytest.raises(ResponseTooLarge, match="1000 bytes"):
        run(lambda: store.put("alice", "resp_big", record(size=2_000)))
    assert run(lambda: store.get("alice", "resp_big")) is None


def test_putting_the_same_id_again_replaces_it_and_counts_once() -> None:
    store = MemoryStore(max_items=10, max_bytes=10_000, ttl=60)
    run(lambda: store.put("alice", "resp_1", record("a")))
    first = store.size[1]
    run(lambda: store.put("alice", "resp_1", record("b")))
    got = run(lambda: store.get("alice", "resp_1"))
    assert store.size == (1, first) and got is not None and got.items[0]["content"] == "b"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()


def in_redis(
    server: RedisServer, step: Callable[[RedisStore, Redis], Awaitable[T]], ttl: float = 60
) -> T:
    async def go() -> T:
        client = Redis.from_url(server.url)
        try:
            return await step(RedisStore(client, ttl=ttl, max_bytes_per_item=2_000), client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_redis_keeps_records_per_owner_with_an_expiry(redis_server: RedisServer) -> None:
    async def step(store: RedisStore, client: Redis) -> None:
        await store.put("alice", "resp_1", record())
        assert await store.get("alice", "resp_1") == record()
        assert await store.get("bob", "resp_1") is None
        assert await store.delete("bob", "resp_1") is False
        name = key("alice", "resp_1")
        assert name.startswith("cortex:response:") and "alice" not in name
        assert 0 < await client.ttl(name) <= 60
        assert await store.delete("alice", "resp_1") is True
        assert await store.get("alice", "resp_1") is None

    in_redis(redis_server, step)


def test_redis_records_expire(redis_server: RedisServer) -> None:
    async def step(store: RedisStore, client: Redis) -> None:
        await store.put("alice", "resp_short", record())
        await asyncio.sleep(1.2)
        assert await store.get("alice", "resp_short") is None

    in_redis(redis_server, step, ttl=1)


def test_redis_refuses_a_record_too_large_and_odd_ids(redis_server: RedisServer) -> None:
    async def step(store: RedisStore, client: Redis) -> None:
        with pytest.raises(ResponseTooLarge):
            await store.put("alice", "resp_big", record(size=5_000))
        assert await client.exists(key("alice", "resp_big")) == 0
        assert await store.get("alice", "resp_1:*") is None
        with pytest.raises(ValueError):
            await store.put("alice", "resp:1", record())

    in_redis(redis_server, step)
