"""Which models each Ollama server has in memory, from its ``/api/ps``, and which are busy.

Ollama loads a model on its first request (seconds, for a large one) and evicts
an idle one when the next does not fit. Córtex reads ``/api/ps`` on every health
check and after answers, and keeps its own count of streams per model, so the
router can send a model where it is loaded, and a cold one where loading it
evicts nothing that is in use.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

import orjson

from ..modelname import canonical

# Ollama writes nanoseconds; Python's ISO parser takes at most microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class Loaded:
    """One model in a server's memory, as ``/api/ps`` reports it."""

    name: str
    size_vram: int
    expires_at: float | None  # unix seconds; None when the server gave no time


class InMemory(TypedDict):
    """One model in a backend's memory, as ``/cortex/backends`` shows it."""

    name: str
    size_vram: int
    expires_at: float | None
    in_flight: int  # Córtex's streams on it
    loading: bool  # a first request is waiting for the load


@dataclass
class Residency:
    """A backend's models in memory (None: unknown, as for OpenAI-compatible servers), each
    known by its ``modelname.canonical`` name."""

    loaded: dict[str, Loaded] | None = None
    busy: dict[str, int] = field(default_factory=dict)  # streams in flight, per model
    loading: set[str] = field(default_factory=set)  # cold requests not yet answered
    remote: set[str] = field(default_factory=set)  # cloud models: served elsewhere, never loaded

    def __post_init__(self) -> None:
        if self.loaded is not None:
            self.update(self.loaded)

    def is_loaded(self, model: str, now: float | None = None) -> bool:
        """In memory, or a cloud model (which no load delays and nothing evicts)."""
        if self.loaded is None:
            return False
        if canonical(model) in self.remote:
            return True
        entry = self.loaded.get(canonical(model))
        if entry is None:
            return False
        now = time.time() if now is None else now
        return entry.expires_at is None or entry.expires_at > now

    def evicts_busy(self, model: str) -> int:
        """How many other models in use here a load of ``model`` could push out: streaming, or
        being loaded for a request Córtex sent (which ``/api/ps`` may not show yet)."""
        model = canonical(model)
        if self.loaded is None or model in self.remote:
            return 0
        in_use = {name for name, streams in self.busy.items() if streams > 0} | self.loading
        return sum(1 for name in self._present() if name != model and name in in_use)

    def crowd(self, model: str) -> int:
        """Models other than ``model`` in memory, or on their way there because Córtex just
        sent a request for them: the more, the likelier a load evicts one."""
        model = canonical(model)
        if self.loaded is None or model in self.remote:
            return 0
        return sum(1 for name in self._present() if name != model)

    def _present(self) -> set[str]:
        assert self.loaded is not None
        streaming = {name for name, streams in self.busy.items() if streams > 0}
        return (self.loaded.keys() | self.loading | streaming) - self.remote

    def view(self) -> list[InMemory] | None:
        """For ``/cortex/backends``: each model in memory, its size and streams, or None."""
        if self.loaded is None:
            return None
        shown = [
            InMemory(
                name=entry.name,
                size_vram=entry.size_vram,
                expires_at=entry.expires_at,
                in_flight=self.busy.get(name, 0),
                loading=name in self.loading,
            )
            for name, entry in self.loaded.items()
        ]
        for name in sorted(self.loading - self.loaded.keys()):
            shown.append(
                InMemory(name=name, size_vram=0, expires_at=None, in_flight=0, loading=True)
            )
        return shown

    def started(self, model: str) -> None:
        model = canonical(model)
        self.busy[model] = self.busy.get(model, 0) + 1

    def ended(self, model: str) -> None:
        model = canonical(model)
        left = self.busy.get(model, 0) - 1
        if left > 0:
            self.busy[model] = left
        else:
            self.busy.pop(model, None)
        self.loading.discard(model)

    def answered(self, model: str) -> None:
        """The server sent a first byte for ``model``: it is in memory now."""
        model = canonical(model)
        self.loading.discard(model)
        if self.loaded is not None and model not in self.loaded and model not in self.remote:
            self.loaded[model] = Loaded(model, 0, None)

    def update(self, loaded: dict[str, Loaded]) -> None:
        self.loaded = {
            canonical(name): entry
            for name, entry in loaded.items()
            if canonical(name) not in self.remote
        }


def parse_ps(body: bytes) -> dict[str, Loaded]:
    """The models of an ``/api/ps`` answer; ValueError if it is not shaped as Ollama's."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    models = answer.get("models") if isinstance(answer, dict) else None
    if not isinstance(models, list):
        raise ValueError("no models list")
    loaded = {}
    for item in models:
        if not isinstance(item, dict):
            continue
        name = item.get("name") or item.get("model")
        if not isinstance(name, str) or not name or item.get("remote_host"):
            continue  # a cloud model runs elsewhere: it takes no memory here
        vram = item.get("size_vram")
        expires = unix_time(item.get("expires_at"))
        loaded[name] = Loaded(name, vram if type(vram) is int else 0, expires)
    return loaded


def unix_time(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(
            _FRACTION.sub(r"\1", stamp).replace("Z", "+00:00")
        ).timestamp()
    except ValueError:
        return None
