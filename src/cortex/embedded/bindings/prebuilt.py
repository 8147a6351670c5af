"""xllamacpp: llama.cpp's own server engine in a portable wheel from PyPI, called in process.

Its engine also listens for HTTP; here that listener is a Unix socket whose path
is removed as soon as it exists, behind a random key, so nothing can reach it.
Its answers arrive through a callback on the thread that asked, so each one
runs on a thread of its own and is handed over through a small queue.
"""

from __future__ import annotations

import importlib
import os
import queue
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import Kind, LoadSettings, PromptTooLong, default_threads

QUEUE_SIZE = 64  # chunks between the engine's thread and the worker's
LOG_WARNINGS = 2  # llama.cpp's log levels: 1 errors, 2 warnings, 3 information
_END = object()
TOO_LONG = "exceed_context_size_error"  # the engine's error type for a prompt over the context


class EngineError(RuntimeError):
    pass


class PrebuiltGeneration:
    def __init__(self, run: Callable[[Callable[[dict[str, Any]], bool]], None]) -> None:
        self.prompt_tokens = 0
        self.completion_tokens: int | None = None
        self.cached_tokens = 0  # of the prompt's, taken from the context's shared prefix
        self._chunks: queue.Queue[object] = queue.Queue(QUEUE_SIZE)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(run,), daemon=True)
        self._thread.start()

    def _produce(self, run: Callable[[Callable[[dict[str, Any]], bool]], None]) -> None:
        try:
            run(self._take)
        except Exception as exc:  # the engine refused the request
            self._put(EngineError(str(exc)))
        self._put(_END)

    def _take(self, chunk: dict[str, Any]) -> bool:
        """The engine's callback: True asks it to stop (the reader is gone)."""
        if "choices" not in chunk and "usage" not in chunk:  # an error, in the server's shape
            error = chunk.get("error", chunk)
            message = error.get("message", error) if isinstance(error, dict) else error
            too_long = isinstance(error, dict) and error.get("type") == TOO_LONG
            self._put((PromptTooLong if too_long else EngineError)(str(message)))
            return True
        return not self._put(chunk)

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        while (item := self._chunks.get()) is not _END:
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, dict)
            if usage := item.get("usage"):
                self.prompt_tokens = int(usage.get("prompt_tokens", 0))
                if "completion_tokens" in usage:
                    self.completion_tokens = int(usage["completion_tokens"])
                details = usage.get("prompt_tokens_details") or {}
                self.cached_tokens = int(details.get("cached_tokens", 0))
            for choice in item.get("choices") or ():
                text = choice["delta"].get("content") if "delta" in choice else choice["text"]
                yield text or "", choice.get("finish_reason")

    def close(self) -> None:
        """Stop at the engine's next token; its thread ends on its own."""
        self._stopped.set()
        while not self._chunks.empty():
            self._chunks.get_nowait()


class Prebuilt:
    kind: Kind = "prebuilt"

    def __init__(self, settings: LoadSettings) -> None:
        xllamacpp: Any = importlib.import_module("xllamacpp")
        params = xllamacpp.CommonParams()
        params.model.path = settings.model_path
        params.n_ctx = settings.context
        params.n_parallel = 1  # the worker runs one answer at a time
        # As llama-cpp-python: generation on half the CPUs, the prompt on all of them.
        params.cpuparams.n_threads = settings.threads or default_threads()
        params.cpuparams_batch.n_threads = settings.threads or os.cpu_count() or 1
        params.sampling.penalty_last_n = settings.repeat_window
        params.cache_ram_mib = 0  # no prompt cache in RAM beyond the context itself
        params.cache_idle_slots = False
        params.swa_full = True  # a shared prefix stays reusable past the sliding window
        params.warmup = False  # the worker's own self-test generates a token
        params.ui = False
        params.verbosity = LOG_WARNINGS
        home = tempfile.mkdtemp(prefix="cortex-llama-")  # mode 0700
        params.hostnames = [os.path.join(home, "engine.sock")]
        params.api_keys = [secrets.token_urlsafe(32)]
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._server = xllamacpp.Server(params)
        finally:
            shutil.rmtree(home, ignore_errors=True)  # the listener stays, its path is gone
            for sig, handler in handlers.items():  # releases of the engine that set their own
                signal.signal(sig, handler)
        self.system_info = str(xllamacpp.get_system_info()).strip()
        self._repeat_window = settings.repeat_window

    def complete(self, prompt: str, params: dict[str, Any]) -> PrebuiltGeneration:
        body = request(params, self._repeat_window, prompt=prompt)
        return PrebuiltGeneration(lambda take: self._server.handle_completions(body, take))

    def chat(self, messages: list[dict[str, str]], params: dict[str, Any]) -> PrebuiltGeneration:
        body = request(params, self._repeat_window, messages=messages)
        return PrebuiltGeneration(lambda take: self._server.handle_chat_completions(body, take))


def request(params: dict[str, Any], repeat_window: int, **fields: Any) -> dict[str, Any]:
    """An OpenAI-style request body, as llama.cpp's server reads it (the sampling names match)."""
    return {
        "repeat_last_n": repeat_window,
        **params,
        **fields,
        "stream": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": True,  # reuse the context's shared prefix (the transcript's preamble)
    }
