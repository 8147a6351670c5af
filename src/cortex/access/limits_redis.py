"""Keys, limits and usage in Redis, shared by every Córtex instance that points at it.

Each check is one Lua script, so two instances cannot both take the last slot.
Windows and lease expiries use Redis's own clock (``TIME``); the day for the
token counters is the caller's UTC date. The keys, under ``cortex:``:

    cortex:keys                    hash: name → the key's record (JSON, with its hash)
    cortex:{NAME}:rpm              sorted set: one member per request, scored by time (ms)
    cortex:{NAME}:leases           sorted set: one member per stream, scored by expiry (ms)
    cortex:{NAME}:tokens:DAY       counter, expires two days later
    cortex:usage                   hash: "NAME\\tMODEL\\tfield" → count

Any Redis failure becomes ``StoreUnavailable``; calls time out after
``TIMEOUT`` seconds and are not retried (the caller decides what to do).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..config import KeyRecord
from . import limits
from .keys import KeyFileError
from .limits import DAY, WINDOW, Refusal, StoreUnavailable, UsageRow, today, until_midnight

T = TypeVar("T")
TIMEOUT = 1.0
KEYS_HASH = "cortex:keys"
USAGE_HASH = "cortex:usage"
USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "errors")
LIMITS: tuple[str, str, str] = ("rpm", "tokens", "concurrent")

# KEYS: rpm set, today's token counter, lease set.
# ARGV: rpm, window ms, tokens per day, concurrent, lease id ("" for none), lease ttl ms,
# and an id for this request.
# Returns {0, 0} when admitted, else {1|2|3 for rpm|tokens|concurrent, retry after in ms}.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, concurrent = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, ttl = ARGV[5], tonumber(ARGV[6])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {1, tonumber(oldest[2]) + window - now}
  end
end
if tokens > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= tokens then
  return {2, 0}
end
if concurrent > 0 and lease ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= concurrent then
    return {3, 1000}
  end
  redis.call('ZADD', KEYS[3], now + ttl, lease)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[1], window)
end
return {0, 0}
"""

# KEYS: a lease set. ARGV: ttl ms, then the leases still held. Only leases that exist move.
RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 0
"""


def connect(url: str) -> Redis:
    """A client that fails fast: no retries, a short timeout on every call."""
    return Redis.from_url(
        url,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return await make()
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(str(exc) or type(exc).__name__) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _key(name: str, what: str) -> str:
    return f"cortex:{{{name}}}:{what}"  # one hash slot per key name, for Redis Cluster


class RedisLimitStore:
    def __init__(self, client: Redis) -> None:
        self._redis = client
        self._admit = client.register_script(ADMIT)
        self._renew = client.register_script(RENEW)

    async def admit(
        self,
        name: str,
        rpm: int,
        tokens_per_day: int,
        concurrent: int,
        lease: str | None,
        request: str,
    ) -> Refusal | None:
        keys = [_key(name, "rpm"), _key(name, f"tokens:{today()}"), _key(name, "leases")]
        args: list[int | str] = [rpm, int(WINDOW * 1000), tokens_per_day, concurrent]
        args += [lease or "", int(limits.LEASE_TTL * 1000), request]
        code, retry_ms = await _call(lambda: self._admit(keys=keys, args=args))
        if int(code) == 0:
            return None
        limit = LIMITS[int(code) - 1]
        retry = until_midnight() if limit == "tokens" else int(retry_ms) / 1000
        return Refusal(limit, retry)  # type: ignore[arg-type]

    async def renew(self, held: Mapping[str, Collection[str]], ttl: float) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, leases in held.items():
                    await self._renew(
                        keys=[_key(name, "leases")], args=[int(ttl * 1000), *leases], client=pipe
                    )
                await pipe.execute()

        await _call(run)

    async def release(self, name: str, lease: str) -> None:
        await _call(lambda: self._redis.zrem(_key(name, "leases"), lease))

    async def refund(self, name: str, request: str, lease: str | None) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(_key(name, "rpm"), request)
                if lease is not None:
                    pipe.zrem(_key(name, "leases"), lease)
                await pipe.execute()

        await _call(run)

    async def record(
        self, name: str, model: str, prompt: int, completion: int, error: bool
    ) -> None:
        counter = _key(name, f"tokens:{today()}")
        values = (1, prompt, completion, int(error))

        async def run() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(counter, prompt + completion)
                pipe.expire(counter, 2 * DAY)
                for field, value in zip(USAGE_FIELDS, values, strict=True):
                    if value:
                        pipe.hincrby(USAGE_HASH, f"{name}\t{model}\t{field}", value)
                await pipe.execute()

        await _call(run)

    async def usage(self) -> tuple[list[UsageRow], dict[str, int]]:
        raw = await _call(lambda: self._redis.hgetall(USAGE_HASH))
        rows: dict[tuple[str, str], UsageRow] = {}
        for field, value in raw.items():
            name, model, what = _text(field).split("\t")
            row = rows.setdefault((name, model), UsageRow(name, model))
            setattr(row, what, int(value))
        names = sorted({name for name, _ in rows})
        day = today()
        counts: list[Any] = (
            await _call(lambda: self._redis.mget([_key(n, f"tokens:{day}") for n in names]))
            if names
            else []
        )
        used = {n: int(c) for n, c in zip(names, counts, strict=True) if c is not None}
        return list(rows.values()), used

    async def close(self) -> None:
        await self._redis.aclose()


class RedisKeyStore:
    def __init__(self, client: Redis) -> None:
        self._redis = client

    async def read(self) -> list[KeyRecord]:
        raw = await _call(lambda: self._redis.hgetall(KEYS_HASH))
        try:
            records = [KeyRecord.model_validate_json(value) for value in raw.values()]
        except ValidationError as exc:
            raise KeyFileError(f"a key in Redis ({KEYS_HASH}) is not valid: {exc}") from None
        return sorted(records, key=lambda r: r.created or "")

    async def add(self, record: KeyRecord) -> bool:
        body = orjson.dumps(record.model_dump(exclude_none=True))
        added = await _call(lambda: self._redis.hsetnx(KEYS_HASH, record.name, body))
        return bool(added)

    async def remove(self, name: str) -> bool:
        removed = await _call(lambda: self._redis.hdel(KEYS_HASH, name))
        return bool(removed)

    async def close(self) -> None:
        await self._redis.aclose()
