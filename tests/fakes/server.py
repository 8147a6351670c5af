"""A scriptable fake Ollama: raw HTTP/1.1 on asyncio streams, served from a background thread.

    with FakeOllama() as fake:
        fake.script = Script(tokens=["Hola", " mundo"], delay=0.01)
        ...  # talk to fake.url
        fake.requests[-1].json, fake.wait_disconnect(timeout=5), fake.bytes_written

A test that runs many scripted requests at once names a script per model instead:
`fake.scripts["case-1"] = Script(fault="reset_mid")` (the model must also be listed in
`fake.models`); requests for other models get `fake.script`.

The same server is also an OpenAI-compatible model server (like llama-server, vLLM or
LM Studio) under `fake.url + "/v1"`, and serves Anthropic's Messages API at /v1/messages
(as Ollama ≥0.14 does): the APIs' paths do not collide, and one Script drives them all.
Set `fake.api_key` to require `Authorization: Bearer <key>` on /v1/* (or `x-api-key: <key>`
on /v1/messages).

Every byte is written by hand so tests control framing and timing exactly; the watcher
reading ahead on each connection notices a client that goes away even while a response stalls.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
from contextlib import suppress
from types import TracebackType
from typing import Any

from tests.fakes import anthropic_routes, ollama_admin_routes, ollama_routes, openai_routes
from tests.fakes import ollama_wire as wire
from tests.fakes.memory import Memory
from tests.fakes.script import Fault, Script
from tests.fakes.transport import BadRequest, Conn, Out, PeerClosed, RecordedRequest, Request

__all__ = ["FakeOllama", "Fault", "RecordedRequest", "Script"]


class FakeOllama:
    """Fake Ollama server. Use as a context manager; mutate `script` / `models` at any time."""

    def __init__(
        self,
        script: Script | None = None,
        models: list[str] | None = None,
        host: str = "127.0.0.1",
        api_key: str | None = None,
    ) -> None:
        self.script = script or Script()
        self.scripts: dict[str, Script] = {}  # per-model scripts, chosen by the request's model
        self.models = list(models) if models is not None else [wire.DEFAULT_MODEL]
        self.host = host
        self.api_key = api_key  # if set, /v1/* requests need `Authorization: Bearer <key>`
        self.port = 0
        self.connections = 0  # TCP connections accepted so far
        self.errors: list[BaseException] = []  # unexpected exceptions inside the fake
        self._cond = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._last_disconnect: float | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None
        self.memory = Memory()  # models in memory, for /api/ps; loads and evictions
        self.engine_metrics: bytes | None = None  # if set, GET /metrics answers it (vLLM-like)
        self.slots: bytes | None = None  # if set, GET /slots answers it (llama.cpp-like)
        self.tokenizes = False  # if set, POST /tokenize answers (llama.cpp-like: a token a word)
        self.blobs: set[str] = set()  # digests uploaded to /api/blobs
        self.admin_failure: str | None = None  # pull/push/create fail after their first line
        self.progress_delay = 0.0  # seconds between progress lines
        self.props: bytes | None = None  # if set, GET /props answers it (llama-server-like)
        self.max_model_len: int | None = None  # if set, /v1/models entries carry it (vLLM)
        self.version = wire.OLLAMA_VERSION  # what /api/version answers
        self._ids = 0

    # ---- thread-side API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def bytes_written(self) -> int:
        """Response payload bytes the kernel accepted for the most recent request."""
        with self._cond:
            return self._requests[-1].bytes_written if self._requests else 0

    def reset(self) -> None:
        """Forget recorded requests, disconnects and which models ran (for /api/ps)."""
        with self._cond:
            self._requests.clear()
            self._last_disconnect = None
        self.memory.clear()

    def wait_disconnect(self, timeout: float = 5.0) -> float | None:
        """Monotonic time of the latest mid-response client disconnect since `reset()`,
        waiting up to `timeout` for one. EOF (a half-close too), an RST or a failed write
        all count; the response is cancelled when it happens."""
        with self._cond:
            self._cond.wait_for(lambda: self._last_disconnect is not None, timeout)
            return self._last_disconnect

    def wait_requests(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= count, timeout)

    def start(self) -> FakeOllama:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-ollama")
        self._thread.daemon = True
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Ollama did not start")
        if self._startup_error is not None:
            raise RuntimeError("fake Ollama failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, stop_event, thread = self._loop, self._stop_event, self._thread
        if loop is None or stop_event is None or thread is None:
            return
        with suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(10)
        if thread.is_alive():
            raise RuntimeError("fake Ollama thread did not stop")
        self._loop = self._stop_event = self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise RuntimeError(f"fake Ollama hit {len(self.errors)} error(s)") from self.errors[0]

    # ---- event-loop side -----------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as exc:
            self._startup_error = exc
            self.errors.append(exc)
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for _ in range(3):  # let just-accepted connections register their task
                await asyncio.sleep(0)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = Conn(reader, writer)
        try:
            while (req := await conn.read_request()) is not None:
                if not await self._serve(conn, req):
                    break
        except (ConnectionError, PeerClosed):
            pass
        except BadRequest:
            with suppress(ConnectionError):
                headers = [("Content-Type", wire.TEXT_UTF8), ("Connection", "close")]
                writer.write(wire.response_head(400, headers))
                writer.write(b"400 Bad Request")
                await writer.drain()
        except Exception as exc:
            self.errors.append(exc)
            traceback.print_exception(exc, file=sys.stderr)
        finally:
            self._tasks.discard(task)
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    def _record(self, req: Request) -> RecordedRequest:
        rec = RecordedRequest(req.method, req.target, req.headers, req.body, time.monotonic())
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()
        return rec

    def _disconnected(self, rec: RecordedRequest) -> None:
        now = time.monotonic()
        with self._cond:
            rec.disconnected_at = now
            self._last_disconnect = now
            self._cond.notify_all()

    async def _serve(self, conn: Conn, req: Request) -> bool:
        """Answer one request while watching for the client to go away. Returns keep-alive."""
        rec = self._record(req)
        script = self._script_for(req)
        watcher = asyncio.create_task(conn.watch())
        work = asyncio.create_task(
            self._respond(Out(conn, rec, req.wants_close, self._cond), req, script)
        )
        try:
            await asyncio.wait({watcher, work}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                exc = work.exception()
                if exc is None:
                    return work.result()
                if not isinstance(exc, ConnectionError):
                    raise exc
            if not conn.aborted:
                self._disconnected(rec)
            return False
        finally:
            watcher.cancel()
            work.cancel()
            await asyncio.gather(watcher, work, return_exceptions=True)

    def _script_for(self, req: Request) -> Script:
        scripts = self.scripts
        if scripts and req.body:
            try:
                model = json.loads(req.body).get("model")
            except (ValueError, AttributeError, RecursionError):
                model = None
            if isinstance(model, str) and model in scripts:
                return scripts[model]
        return self.script

    async def _respond(self, out: Out, req: Request, script: Script) -> bool:
        path, method = req.path, req.method
        if path in anthropic_routes.PATHS:
            return await anthropic_routes.respond(self, out, req, script)
        openai = path.startswith("/v1/")
        if openai and (refusal := openai_routes.denied(self, req)) is not None:
            return await out.whole(*refusal)
        if path in script.applies_to:
            if script.header_delay:
                await asyncio.sleep(script.header_delay)
            if script.fault == "status":
                if openai:
                    return await out.whole(*openai_routes.status_fault(script))
                return await out.whole(script.status, script.error_content_type, script.error_body)
        if openai:
            return await openai_routes.serve(self, out, req, script)
        if method == "GET" and path == "/metrics" and self.engine_metrics is not None:
            return await out.whole(200, wire.PROMETHEUS, self.engine_metrics)
        if method == "GET" and path == "/slots" and self.slots is not None:
            return await out.whole(200, wire.JSON_UTF8, self.slots)
        if method == "GET" and path == "/props" and self.props is not None:
            return await out.whole(200, wire.JSON_UTF8, self.props)
        managed = await ollama_admin_routes.respond(self, out, req)
        if managed is not None:
            return managed
        if method == "POST" and path == "/tokenize" and self.tokenizes:
            return await ollama_routes.tokenize(out, req)
        if path == "/" and method in ("GET", "HEAD"):
            return await out.whole(200, wire.TEXT_UTF8, b"Ollama is running", method == "HEAD")
        if method == "GET" and path in ("/api/version", "/api/tags", "/api/ps"):
            if path == "/api/ps":
                return await ollama_routes.ps(self, out)
            if path == "/api/version":
                return await out.whole(200, wire.JSON_UTF8, wire.version_body(self.version))
            body = wire.tags_body(self.models)
            return await out.whole(200, wire.JSON_UTF8, body)
        if method == "POST":
            if path in ("/api/chat", "/api/generate"):
                return await ollama_routes.generate(self, out, req, script)
            if path == "/api/embed":
                return await ollama_routes.embed(self, out, req)
            if path == "/api/embeddings":
                return await ollama_routes.embeddings(self, out, req)
            if path == "/api/show":
                return await ollama_routes.show(self, out, req)
        return await out.whole(404, wire.TEXT_PLAIN, wire.NOT_FOUND_PAGE)

    # ---- Host: the state request handlers see -------------------------------------------

    def resolve(self, model: str) -> str | None:
        if model in self.models:
            return model
        if ":" not in model and f"{model}:latest" in self.models:
            return f"{model}:latest"
        return None

    async def use(self, model: str) -> None:
        await self.memory.use(model)

    def done(self, model: str, keep_alive: Any = None) -> None:
        self.memory.done(model, keep=not ollama_routes.is_zero_duration(keep_alive))

    def running(self) -> list[str]:
        return self.memory.loaded()

    def next_id(self) -> int:
        with self._cond:
            self._ids += 1
            return self._ids
