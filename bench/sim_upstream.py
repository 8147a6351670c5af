"""A simulated Ollama server for bench/routing_sim.py: models that load, evict and cache prompts.

It speaks enough of Ollama's HTTP API for Córtex (``GET /``, ``/api/tags``,
``/api/ps``, ``/api/version``, ``POST /api/show``, streamed ``POST /api/chat``)
and times its answers as a real server would:

- **Memory.** Models have sizes; a server holds what fits in ``memory``. A request
  for a model not in memory loads it (``load_s_per_gb`` × its size). When it does
  not fit, an idle model is unloaded first, the least recently used; when every
  model is busy, the load waits until one is idle. Like Ollama's scheduler
  (server/sched.go), requests are scheduled one at a time: while one waits for an
  unload, every request behind it waits too, even for a model in memory.
- **Prompt cache.** Each loaded model keeps its last ``slots`` sequences (prompt
  plus answer), least recently used forgotten first, and a prompt reuses its
  longest common prefix with any of them, as Ollama's runner does with several
  parallel slots (runner/llamarunner/cache.go, ``findBestCacheSlot``) and
  llama.cpp's server with its slots. Loading a model starts it with an empty cache.
- **Time.** First token after ``base_s`` + ``per_token_s`` × uncached prompt tokens
  (prefill), then ``tokens`` tokens ``token_s`` apart. A prompt is its messages'
  roles and texts, one per line; its tokens are its characters / 4.
- **Parallelism.** ``slots`` requests run at once per model; more wait inside the
  server, their wait counted in their time to first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

CHARS_PER_TOKEN = 4
GB = 1_000_000_000
KEEP_ALIVE_S = 300.0  # Ollama's default keep_alive: 5 minutes
WORDS = ("the", "model", "cache", "token", "route", "server", "answer", "load", "fast", "slot")


@dataclass(frozen=True)
class Model:
    name: str
    size: int  # bytes in memory, weights and KV cache
    family: str
    parameter_size: str
    quantization: str = "Q4_K_M"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }


@dataclass(frozen=True)
class Timing:
    base_s: float = 0.020
    per_token_s: float = 0.0002  # prefill: 5,000 prompt tokens a second
    token_s: float = 0.020  # generation: 50 tokens a second
    tokens: int = 16
    load_s_per_gb: float = 0.3  # ~3 GB/s from the page cache or a fast NVMe disk
    context_length: int = 32768


@dataclass(frozen=True)
class ServerSpec:
    name: str
    models: tuple[Model, ...]  # what it can load (its /api/tags)
    memory: int  # bytes for models
    preload: tuple[str, ...] = ()  # in memory at the start, loaded before the run
    slots: int = 4  # OLLAMA_NUM_PARALLEL: requests at once per model, and cached sequences
    timing: Timing = Timing()


@dataclass(frozen=True)
class Durations:
    """An answer's times in seconds, as Ollama reports them in its last line."""

    total: float  # from the request's arrival to the last token
    load: float
    prompt_eval: float
    eval: float  # from the first token to the last


@dataclass
class Stats:
    requests: int = 0
    loads: int = 0
    evictions: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    queued_s: float = 0.0  # waiting inside the server: scheduler, load, slot
    load_wait_s: float = 0.0
    loads_by_model: dict[str, int] = field(default_factory=dict)


@dataclass
class Runner:
    """A model in memory: its slots, its cached sequences and who is using it."""

    model: Model
    slots: asyncio.Semaphore
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    cache: list[str] = field(default_factory=list)  # most recently used last
    refs: int = 0
    loading: asyncio.Task[None] | None = None
    used_at: float = field(default_factory=time.monotonic)
    expires_at: float = field(default_factory=lambda: time.time() + KEEP_ALIVE_S)

    def idle(self) -> bool:
        return self.refs == 0

    def cached_chars(self, prompt: str) -> int:
        return max((common_prefix(prompt, seq) for seq in self.cache), default=0)

    def remember(self, sequence: str, limit: int) -> None:
        best = max(self.cache, key=lambda seq: common_prefix(sequence, seq), default=None)
        if best is not None and sequence.startswith(best):
            self.cache.remove(best)  # the slot grew: its sequence now ends with the answer
        self.cache.append(sequence)
        del self.cache[:-limit]


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slices (C-speed compares)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def render(messages: Sequence[Any]) -> str:
    return "".join(
        f"{m.get('role')}: {m.get('content')}\n" for m in messages if isinstance(m, dict)
    )


def tokens_of(chars: int) -> int:
    return chars // CHARS_PER_TOKEN


def go_time(unix: float) -> str:
    """A time as Go's encoding/json writes it: RFC 3339 with nanoseconds."""
    stamp = datetime.fromtimestamp(unix, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}123Z"


class SimServer:
    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.stats = Stats()
        self.models = {m.name: m for m in spec.models}
        self.runners: dict[str, Runner] = {}
        self._scheduler = asyncio.Lock()  # FIFO: one request scheduled at a time
        self._changed = asyncio.Condition()
        self._runner_site: web.AppRunner | None = None
        self.port = 0
        for name in spec.preload:
            runner = self._new_runner(self.models[name])
            runner.ready.set()

    # ---- HTTP ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1") -> int:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._root)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/version", self._version)
        app.router.add_post("/api/show", self._show)
        app.router.add_post("/api/chat", self._chat)
        self._runner_site = web.AppRunner(app, access_log=None, keepalive_timeout=75.0)
        await self._runner_site.setup()
        await web.TCPSite(self._runner_site, host, 0, backlog=1024).start()
        self.port = int(self._runner_site.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner_site is not None:
            await self._runner_site.cleanup()

    async def _root(self, _: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _tags(self, _: web.Request) -> web.Response:
        modified = go_time(1_735_732_800)
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": modified,
                "size": m.size,
                "digest": m.digest,
                "details": m.details(),
            }
            for m in self.spec.models
        ]
        return _json({"models": models})

    async def _ps(self, _: web.Request) -> web.Response:
        """Ollama's api.ProcessResponse: the models in memory, longest to expire first."""
        runners = sorted(self.runners.values(), key=lambda r: r.expires_at, reverse=True)
        models = [
            {
                "name": r.model.name,
                "model": r.model.name,
                "size": r.model.size,
                "digest": r.model.digest,
                "details": r.model.details(),
                "expires_at": go_time(r.expires_at),
                "size_vram": r.model.size,
                "context_length": self.spec.timing.context_length,
            }
            for r in runners
        ]
        return _json({"models": models})

    async def _version(self, _: web.Request) -> web.Response:
        return _json({"version": "0.12.6"})

    async def _show(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        model = self.models.get(str(body.get("model") or body.get("name")))
        if model is None:
            return _json({"error": "model not found"}, 404)
        info = {"general.architecture": model.family}
        shown = {"details": model.details(), "model_info": info, "capabilities": ["completion"]}
        return _json(shown)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        name = str(body.get("model") or "")
        model = self.models.get(name) or self.models.get(f"{name}:latest")
        if model is None:
            return _json({"error": f"model '{name}' not found"}, 404)
        messages = body.get("messages") or []
        return await self._answer(request, model, messages)

    # ---- the simulation --------------------------------------------------------------------

    async def _answer(
        self, request: web.Request, model: Model, messages: list[Any]
    ) -> web.StreamResponse:
        arrived = time.monotonic()
        runner = await self._acquire(model)
        try:
            await runner.ready.wait()
            loaded = time.monotonic() - arrived
            async with runner.slots:
                return await self._generate(request, runner, messages, (arrived, loaded))
        finally:
            await self._release(runner)

    async def _generate(
        self,
        request: web.Request,
        runner: Runner,
        messages: list[Any],
        waited: tuple[float, float],  # when the request arrived, how long it waited for a load
    ) -> web.StreamResponse:
        arrived, load_wait = waited
        timing = self.spec.timing
        prompt = render(messages)
        started = time.monotonic()
        cached = tokens_of(runner.cached_chars(prompt))
        total = tokens_of(len(prompt))
        self._count(total, cached, started - arrived)
        uncached = max(total - cached, 1)
        prefill = timing.base_s + timing.per_token_s * uncached
        await asyncio.sleep(prefill)
        runner.remember(prompt, self.spec.slots)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the client hung up: stop generating
            first = time.monotonic()
            answer = await self._stream(response, runner.model.name, len(prompt))
            runner.remember(prompt + f"assistant: {answer}\n", self.spec.slots)
            end = time.monotonic()
            durations = Durations(end - arrived, load_wait, prefill, end - first)
            await response.write(_final_line(runner.model.name, uncached, timing.tokens, durations))
            await response.write_eof()
        return response

    async def _stream(self, response: web.StreamResponse, model: str, seed: int) -> str:
        """The answer's tokens, one NDJSON line each, ``token_s`` apart; its text."""
        timing = self.spec.timing
        words = []
        for index in range(timing.tokens):
            if index:
                await asyncio.sleep(timing.token_s)
            word = (" " if index else "") + WORDS[(seed + index) % len(WORDS)]
            words.append(word)
            await response.write(_token_line(model, word))
        return "".join(words)

    def _count(self, total: int, cached: int, queued: float) -> None:
        self.stats.requests += 1
        self.stats.prompt_tokens += total
        self.stats.cached_tokens += cached
        self.stats.queued_s += queued

    async def _acquire(self, model: Model) -> Runner:
        """Ollama's scheduler: the model's runner, loading it (after an unload) if needed."""
        async with self._scheduler:
            runner = self.runners.get(model.name)
            if runner is None:
                await self._make_room(model)
                runner = self._new_runner(model)
                runner.loading = asyncio.create_task(self._load(runner))
            runner.refs += 1
            return runner

    async def _make_room(self, model: Model) -> None:
        while self._used() + model.size > self.spec.memory and self.runners:
            victim = self._victim()
            async with self._changed:
                await self._changed.wait_for(victim.idle)
            del self.runners[victim.model.name]
            self.stats.evictions += 1

    def _victim(self) -> Runner:
        by_use = sorted(self.runners.values(), key=lambda r: r.used_at)
        return next((r for r in by_use if r.refs == 0), by_use[0])

    def _used(self) -> int:
        return sum(r.model.size for r in self.runners.values())

    def _new_runner(self, model: Model) -> Runner:
        runner = Runner(model, asyncio.Semaphore(self.spec.slots))
        self.runners[model.name] = runner
        return runner

    async def _load(self, runner: Runner) -> None:
        seconds = self.spec.timing.load_s_per_gb * runner.model.size / GB
        await asyncio.sleep(seconds)
        self.stats.loads += 1
        self.stats.load_wait_s += seconds
        by_model = self.stats.loads_by_model
        by_model[runner.model.name] = by_model.get(runner.model.name, 0) + 1
        runner.ready.set()

    async def _release(self, runner: Runner) -> None:
        runner.refs -= 1
        runner.used_at = time.monotonic()
        if runner.refs == 0:
            runner.expires_at = time.time() + KEEP_ALIVE_S
        async with self._changed:
            self._changed.notify_all()


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def _token_line(model: str, word: str) -> bytes:
    line = {
        "model": model,
        "created_at": go_time(time.time()),
        "message": {"role": "assistant", "content": word},
        "done": False,
    }
    return orjson.dumps(line) + b"\n"


def _final_line(model: str, prompt: int, count: int, took: Durations) -> bytes:
    """Ollama's last line; total minus eval duration is the server's time to first token."""
    line = {
        "model": model,
        "created_at": go_time(time.time()),
        "message": {"role": "assistant", "content": ""},
        "done_reason": "stop",
        "done": True,
        "total_duration": int(took.total * 1e9),
        "load_duration": int(took.load * 1e9),
        "prompt_eval_count": prompt,
        "prompt_eval_duration": int(took.prompt_eval * 1e9),
        "eval_count": count,
        "eval_duration": int(took.eval * 1e9),
    }
    return orjson.dumps(line) + b"\n"
