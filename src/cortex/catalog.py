"""Which model to use when a request names none: configured, else the upstream's first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson

from .errors import ModelNotFound, UpstreamProtocolError

FetchTags = Callable[[], Awaitable[bytes]]


class DefaultModel:
    def __init__(self, configured: str | None, fetch_tags: FetchTags, cache_seconds: float) -> None:
        self._configured = configured
        self._fetch_tags = fetch_tags
        self._cache_seconds = cache_seconds
        self._cached: str | None = None
        self._cached_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._configured:
            return self._configured
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._cached is None or now - self._cached_at > self._cache_seconds:
                self._cached = first_model(await self._fetch_tags())
                self._cached_at = now
            return self._cached


def first_model(tags_body: bytes) -> str:
    """The first model name in an ``/api/tags`` answer."""
    try:
        models = orjson.loads(tags_body).get("models") or []
        name = models[0].get("name") or models[0]["model"] if models else None
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        raise UpstreamProtocolError("the model server's model list is not valid") from None
    if not isinstance(name, str) or not name:
        raise ModelNotFound(
            'no "model" was given and the model server lists no models; '
            "name one in the request or start Córtex with --default-model"
        )
    return name
