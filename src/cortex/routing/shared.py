"""Where other Córtex instances sent a prompt, through the Redis at ``redis_url``.

Each placement writes, for the prompt's conversation and each of its block
names (prefix.py), the backend it went to, with an expiry:

    cortex:prefix:<16 hex digits>    the backend's name, for ``TTL`` seconds

Before placing, one ``MGET`` of the prompt's names gives the deepest block some
instance sent somewhere (with no block found, where the conversation went, as
one block); the scorer counts it as that backend's own prefix match. Redis only
advises: a lookup gives up after ``LOOKUP_TIMEOUT`` and the local index alone
decides; writes go out in the background, at most ``WRITES`` at once (more are
dropped); after a failure Redis is left alone for ``BACKOFF`` seconds. An outage
is logged once, and once more when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..urls import redact_url
from .prefix import Prompt

logger = logging.getLogger("cortex.router")

TTL = 300  # seconds: Ollama's default keep_alive, past which a prompt's cache is likely gone
LOOKUP_TIMEOUT = 0.05
WRITE_TIMEOUT = 1.0
BACKOFF = 1.0
WRITES = 64
PREFIX = "cortex:prefix:"


class SharedPrefixes:
    def __init__(self, url: str, ttl: int = TTL, timeout: float = LOOKUP_TIMEOUT) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=WRITE_TIMEOUT,
            socket_connect_timeout=WRITE_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._where = redact_url(url)
        self._ttl = ttl
        self._timeout = timeout
        self._writes: set[asyncio.Task[None]] = set()
        self._quiet_until = 0.0
        self._down = False

    async def lookup(self, prompt: Prompt) -> Prompt:
        """The prompt with ``sent`` from Redis; as it was when Redis does not answer in time."""
        if time.monotonic() < self._quiet_until:
            return prompt
        names = [_key(name) for name in (prompt.conversation, *prompt.blocks)]
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._redis.mget(names)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return prompt
        self._answered()
        for depth in range(len(found) - 1, 0, -1):  # found[i]: where block i - 1 went
            backend = found[depth]
            if backend is not None:
                return replace(prompt, sent=(_text(backend), depth))
        conversation = found[0]
        return prompt if conversation is None else replace(prompt, sent=(_text(conversation), 1))

    def record(self, prompt: Prompt, backend: str) -> None:
        """Write where ``prompt`` went, without making its request wait."""
        if len(self._writes) >= WRITES or time.monotonic() < self._quiet_until:
            return
        task = asyncio.create_task(self._write(prompt, backend.encode()))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, prompt: Prompt, backend: bytes) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in (prompt.conversation, *prompt.blocks):
                    pipe.set(_key(name), backend, ex=self._ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self._quiet_until = time.monotonic() + BACKOFF
        if not self._down:
            self._down = True
            logger.warning(
                "Redis at %s is not answering (%s): routing on this instance's own prefix "
                "index until it is back",
                self._where,
                str(exc) or type(exc).__name__,
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            logger.warning("Redis at %s answers again: prefixes are shared", self._where)

    async def close(self) -> None:
        for task in list(self._writes):
            task.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self._redis.aclose()


def _key(name: bytes) -> str:
    return PREFIX + name.hex()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
