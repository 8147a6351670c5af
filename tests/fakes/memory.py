"""Which models a fake Ollama holds in memory: loads cost time, and a full memory evicts.

As Ollama does: a request for a model not in memory loads it first (``load_delay``
seconds, during which nothing is sent); when ``room`` models are in memory already,
the least recently used idle one is evicted, and if every one is busy the load waits
until one is idle. Requests for a model being loaded wait for that one load.
``keep_alive: 0`` unloads a model once its answer ends.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass
class Memory:
    room: int | None = None  # models that fit at once; None: any number
    load_delay: float = 0.0
    loads: int = 0
    evictions: int = 0
    _loaded: list[str] = field(default_factory=list)  # most recently used first
    _busy: dict[str, int] = field(default_factory=dict)
    _loading: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def preload(self, *models: str) -> None:
        with self._lock:
            for model in reversed(models):
                if model not in self._loaded:
                    self._loaded.insert(0, model)

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
            self.loads = self.evictions = 0

    async def use(self, model: str) -> None:
        """Have ``model`` in memory and count one answer on it; call ``done`` after."""
        while True:
            with self._lock:
                if model in self._loaded:
                    self._loaded.remove(model)
                    self._loaded.insert(0, model)
                    self._busy[model] = self._busy.get(model, 0) + 1
                    return
                if model not in self._loading and self._make_room():
                    self._busy[model] = self._busy.get(model, 0) + 1
                    self._loading.add(model)
                    self.loads += 1
                    break
            # Another request is loading it, or every model in memory is busy: wait.
            await asyncio.sleep(0.01)
        try:
            await asyncio.sleep(self.load_delay)
        except BaseException:
            self.done(model, keep=False)
            raise
        finally:
            with self._lock:
                self._loading.discard(model)
        with self._lock:
            self._loaded.insert(0, model)

    def done(self, model: str, keep: bool = True) -> None:
        with self._lock:
            left = self._busy.get(model, 0) - 1
            if left > 0:
                self._busy[model] = left
            else:
                self._busy.pop(model, None)
                if not keep and model in self._loaded:
                    self._loaded.remove(model)

    def _make_room(self) -> bool:
        if self.room is None or len(self._loaded) < self.room:
            return True
        for model in reversed(self._loaded):
            if not self._busy.get(model):
                self._loaded.remove(model)
                self.evictions += 1
                return True
        return False
