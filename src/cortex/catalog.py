"""The upstream's model list, in either dialect, and the default model drawn from it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import ModelNotFound, UpstreamProtocolError
from .modelname import pick


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    created: int  # unix seconds
    owned_by: str
    ollama: dict[str, Any] | None = None  # the upstream's own /api/tags entry, if it is Ollama
    context_length: int | None = None  # as the server tells it, where it does
    capabilities: tuple[str, ...] | None = None  # Ollama's names, where they are known

    @property
    def remote(self) -> bool:
        """An Ollama cloud model: served elsewhere, never in this server's memory."""
        return bool(self.ollama and self.ollama.get("remote_host"))


def from_tags(body: bytes) -> list[ModelEntry]:
    """Entries of an Ollama ``/api/tags`` answer."""
    models = _field(body, "models")
    entries = []
    for item in models:
        name = item.get("name") or item.get("model") if isinstance(item, dict) else None
        if isinstance(name, str) and name:
            entries.append(ModelEntry(name, _unix(item.get("modified_at")), "library", item))
    return entries


def from_openai(body: bytes) -> list[ModelEntry]:
    """Entries of an OpenAI ``/models`` answer, with the context vLLM (``max_model_len``)
    or llama.cpp (``meta.n_ctx``) tells."""
    return [
        ModelEntry(
            item["id"],
            int(item.get("created") or 0),
            str(item.get("owned_by") or "upstream"),
            context_length=_context_length(item),
        )
        for item in _field(body, "data")
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]


def _context_length(item: dict[str, Any]) -> int | None:
    meta = item.get("meta")
    told = item.get("max_model_len") or (meta.get("n_ctx") if isinstance(meta, dict) else None)
    return told if type(told) is int and told > 0 else None


def _field(body: bytes, key: str) -> list[Any]:
    try:
        value = orjson.loads(body).get(key)
    except (orjson.JSONDecodeError, AttributeError):
        value = None
    if not isinstance(value, list):
        raise UpstreamProtocolError("the model server's model list is not valid")
    return value


def _unix(timestamp: Any) -> int:
    if not isinstance(timestamp, str):
        return 0
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def find_model(entries: list[ModelEntry], name: str) -> ModelEntry | None:
    """The entry of ``name``: as it is listed, else by ``modelname.canonical``."""
    listed = pick((e.name for e in entries), name)
    return next((e for e in entries if e.name == listed), None)


def tags_body(entries: list[ModelEntry]) -> bytes:
    """An Ollama ``/api/tags`` answer; entries from an OpenAI upstream get empty details."""
    return orjson.dumps({"models": [e.ollama or _tag(e) for e in entries]})


def name_digest(name: str) -> str:
    """A stable digest for a model whose server gives none: distinct per name, as clients that
    group models by digest (llm-ollama) need."""
    return hashlib.sha256(f"cortex-model:{name}".encode()).hexdigest()


def _tag(entry: ModelEntry) -> dict[str, Any]:
    modified = datetime.fromtimestamp(entry.created, UTC).isoformat().replace("+00:00", "Z")
    tag: dict[str, Any] = {
        "name": entry.name,
        "model": entry.name,
        "modified_at": modified,
        "size": 0,
        "digest": name_digest(entry.name),
        "details": {
            "parent_model": "",
            "format": "",
            "family": "",
            "families": None,
            "parameter_size": "",
            "quantization_level": "",
        },
    }
    if entry.capabilities:
        tag["capabilities"] = list(entry.capabilities)
    return tag


def openai_model(entry: ModelEntry) -> dict[str, Any]:
    return {
        "id": entry.name,
        "object": "model",
        "created": entry.created,
        "owned_by": entry.owned_by,
    }


def openai_list_body(entries: list[ModelEntry]) -> bytes:
    return orjson.dumps({"object": "list", "data": [openai_model(e) for e in entries]})


FetchModels = Callable[[], Awaitable[list[ModelEntry]]]


class DefaultModel:
    """Which model serves a request that names none: configured, else the upstream's first."""

    def __init__(self, configured: str | None, fetch: FetchModels, cache_seconds: float) -> None:
        self._configured = configured
        self._fetch = fetch
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
                entries = await self._fetch()
                if not entries:
                    raise ModelNotFound(
                        'no "model" was given and the model server lists no models; '
                        "name one in the request or start Córtex with --default-model"
                    )
                self._cached, self._cached_at = entries[0].name, now
            return self._cached
