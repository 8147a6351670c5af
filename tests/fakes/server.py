"""A scriptable fake Ollama: raw HTTP/1.1 on asyncio streams, served from a background thread.

    with FakeOllama() as fake:
        fake.script = Script(tokens=["Hola", " mundo"], delay=0.01)
        ...  # talk to fake.url
        fake.requests[-1].json, fake.wait_disconnect(timeout=5), fake.bytes_written

Every byte is written by hand so tests control framing and timing exactly; the watcher
reading ahead on each connection notices a client that goes away even while a response stalls.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import pairwise
from types import TracebackType
from typing import Any, Literal

from tests.fakes import ollama_wire as wire

Fault = Literal[
    "none",
    "split_lines",
    "split_utf8",
    "stall_before_first",
    "stall_mid",
    "reset_mid",
    "close_mid",
    "status",
    "garbage_line",
    "no_trailing_newline",
]
_MID_FAULTS = frozenset({"stall_mid", "reset_mid", "close_mid", "garbage_line"})
_BATCH_BYTES = 32 * 1024
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Script:
    """How generation requests behave. Read once per request, when it arrives."""

    tokens: Sequence[str] = ("Había", " una", " vez")
    count: int | None = None  # if set, stream "tok0 ", "tok1 ", ... instead of `tokens`
    delay: float = 0.0  # sleep before each token; 0 batches writes (chunk framing unchanged)
    header_delay: float = 0.0  # sleep before the status line
    fault: Fault = "none"
    fault_after: int = 1  # tokens written before a *_mid / garbage_line fault fires
    stall: float = 3600.0  # length of stall_before_first / stall_mid (then it carries on)
    split_at: tuple[int, ...] | None = None  # byte offsets for split_lines (default 1, n/2, n-1)
    split_pause: float = 0.005
    status: int = 500  # fault="status"
    error_body: bytes = b'{"error":"fake upstream failure"}'
    error_content_type: str = wire.JSON_UTF8
    garbage: bytes = b"<html>oops\n"
    error_line_after: int | None = None  # Ollama's mid-stream {"error":...} line, then end
    error_message: str = "an error was encountered while running the model: unexpected EOF"
    done_reason: str = "stop"
    created_at: str | None = None  # fixed created_at (default: the current time per line)
    sndbuf: int | None = None  # SO_SNDBUF for the response socket, to tighten backpressure
    # paths where header_delay and fault="status" apply (generation endpoints by default)
    applies_to: frozenset[str] = frozenset({"/api/chat", "/api/generate"})

    def token_iter(self) -> Iterable[str]:
        if self.count is None:
            return self.tokens
        return (f"tok{i} " for i in range(self.count))

    def token_total(self) -> int:
        return len(self.tokens) if self.count is None else self.count


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic()
    disconnected_at: float | None = None  # client went away mid-response
    bytes_written: int = 0  # response payload bytes the kernel took (no chunk framing)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return "close" in tokens or (self.version == "HTTP/1.0" and "keep-alive" not in tokens)


class _PeerClosed(Exception):
    pass


class _BadRequest(Exception):
    pass


class _Conn:
    """Buffered reads over a StreamReader, so a watcher can read ahead without losing bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self.aborted = False

    async def _fill(self) -> None:
        if self.eof:
            raise _PeerClosed
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            raise _PeerClosed
        self.buf += data

    async def watch(self) -> None:
        """Read ahead until the peer closes; returns (or raises) only then."""
        with suppress(_PeerClosed):
            while True:
                await self._fill()

    async def read_until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while (idx := self.buf.find(sep, start)) < 0:
            if len(self.buf) > limit:
                raise _BadRequest("line too long")
            start = max(0, len(self.buf) - len(sep) + 1)
            await self._fill()
        end = idx + len(sep)
        data = bytes(self.buf[:end])
        del self.buf[:end]
        return data

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            await self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    async def read_request(self) -> _Request | None:
        if self.eof and not self.buf:
            return None
        try:
            head = await self.read_until(b"\r\n\r\n", _MAX_HEAD)
        except _PeerClosed:
            if self.buf.strip():
                raise
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(lines[0])
        req = _Request(parts[0], parts[1], parts[2])
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(line)
            key = name.strip().lower()
            value = value.strip()
            req.headers[key] = f"{req.headers[key]}, {value}" if key in req.headers else value
        if req.headers.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            req.body = await self._read_body(req.headers)
        except ValueError as exc:  # unparsable Content-Length or chunk size
            raise _BadRequest(str(exc)) from exc
        return req

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = await self.read_until(b"\r\n", _MAX_HEAD)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await self.read_until(b"\r\n", _MAX_HEAD) != b"\r\n":
                        pass  # trailers
                    return bytes(body)
                body += await self.read_exactly(size)
                await self.read_exactly(2)
                if len(body) > _MAX_BODY:
                    raise _BadRequest("body too large")
        length = int(headers.get("content-length", "0") or "0")
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest("bad content-length")
        return await self.read_exactly(length)


class _Out:
    """Response writer. A write's payload is counted once the kernel took it all, or after
    drain() otherwise; the count is updated under `lock`, together with the write, so no
    reader can see the bytes arrive before the count includes them."""

    def __init__(
        self, conn: _Conn, rec: RecordedRequest, close: bool, lock: threading.Condition
    ) -> None:
        self.conn = conn
        self.rec = rec
        self.close = close
        self.lock = lock

    async def send(self, data: bytes, payload: int) -> None:
        writer = self.conn.writer
        with self.lock:
            writer.write(data)
            flushed = writer.transport.get_write_buffer_size() == 0
            if flushed:
                self.rec.bytes_written += payload
        await writer.drain()
        if not flushed:
            with self.lock:
                self.rec.bytes_written += payload

    def head(self, status: int, content_type: str, length: int | None) -> bytes:
        headers = [("Content-Type", content_type), ("Date", wire.http_date())]
        if length is not None:
            headers.append(("Content-Length", str(length)))
        if self.close:
            headers.append(("Connection", "close"))
        if length is None:
            headers.append(("Transfer-Encoding", "chunked"))
        return wire.response_head(status, headers)

    async def start_chunked(self, status: int, content_type: str) -> None:
        await self.send(self.head(status, content_type, None), 0)

    async def whole(
        self, status: int, content_type: str, body: bytes, head_only: bool = False
    ) -> bool:
        data = self.head(status, content_type, len(body))
        await self.send(data if head_only else data + body, 0 if head_only else len(body))
        return not self.close

    async def lines(self, lines: list[bytes]) -> None:
        if lines:
            await self.send(b"".join(map(wire.chunk, lines)), sum(map(len, lines)))

    async def pieces(self, data: bytes, cuts: list[int], pause: float, chunked: bool) -> None:
        bounds = [0, *cuts, len(data)]
        for i, (lo, hi) in enumerate(pairwise(bounds)):
            if i:
                await asyncio.sleep(pause)
            piece = data[lo:hi]
            await self.send(wire.chunk(piece) if chunked else piece, len(piece))

    async def end(self) -> bool:
        await self.send(wire.LAST_CHUNK, 0)
        return not self.close

    def reset(self) -> bool:
        """Abort with an RST (SO_LINGER 0) instead of a FIN."""
        sock = self.conn.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.aborted = True
        self.conn.writer.transport.abort()
        return False


def _cuts(data: bytes, script: Script) -> list[int]:
    if script.fault == "split_utf8":
        # Cut in the middle of every multi-byte UTF-8 sequence (at its lead byte + size // 2).
        cuts = [i + (2 if b >= 0xF0 else 1) for i, b in enumerate(data) if b >= 0xC0]
        cuts = cuts or [len(data) // 2]
    else:
        cuts = list(script.split_at) if script.split_at else [1, len(data) // 2, len(data) - 1]
    return sorted({c for c in cuts if 0 < c < len(data)})


class FakeOllama:
    """Fake Ollama server. Use as a context manager; mutate `script` / `models` at any time."""

    def __init__(
        self,
        script: Script | None = None,
        models: list[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.script = script or Script()
        self.models = list(models) if models is not None else [wire.DEFAULT_MODEL]
        self.host = host
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
        with self._cond:
            self._requests.clear()
            self._last_disconnect = None

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
        server = await asyncio.start_server(self._handle, self.host, 0)
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
        conn = _Conn(reader, writer)
        try:
            while (req := await conn.read_request()) is not None:
                if not await self._serve(conn, req):
                    break
        except (ConnectionError, _PeerClosed):
            pass
        except _BadRequest:
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

    def _record(self, req: _Request) -> RecordedRequest:
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

    async def _serve(self, conn: _Conn, req: _Request) -> bool:
        """Answer one request while watching for the client to go away. Returns keep-alive."""
        rec = self._record(req)
        script = self.script
        watcher = asyncio.create_task(conn.watch())
        work = asyncio.create_task(
            self._respond(_Out(conn, rec, req.wants_close, self._cond), req, script)
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

    async def _respond(self, out: _Out, req: _Request, script: Script) -> bool:
        path, method = req.path, req.method
        if path in script.applies_to:
            if script.header_delay:
                await asyncio.sleep(script.header_delay)
            if script.fault == "status":
                return await out.whole(script.status, script.error_content_type, script.error_body)
        if path == "/" and method in ("GET", "HEAD"):
            return await out.whole(200, wire.TEXT_UTF8, b"Ollama is running", method == "HEAD")
        if (method, path) == ("GET", "/api/version"):
            return await out.whole(200, wire.JSON_UTF8, wire.version_body())
        if (method, path) == ("GET", "/api/tags"):
            return await out.whole(200, wire.JSON_UTF8, wire.tags_body(self.models))
        if method == "POST" and path in ("/api/chat", "/api/generate"):
            return await self._generate(out, req, script)
        return await out.whole(404, wire.TEXT_PLAIN, wire.NOT_FOUND_PAGE)

    def _knows(self, model: str) -> bool:
        return model in self.models or (":" not in model and f"{model}:latest" in self.models)

    async def _generate(self, out: _Out, req: _Request, script: Script) -> bool:
        if not req.body.strip():
            return await out.whole(400, wire.JSON_UTF8, wire.error_body("missing request body"))
        try:
            body = json.loads(req.body)
        except ValueError as exc:
            return await out.whole(400, wire.JSON_UTF8, wire.error_body(str(exc)))
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str):
            return await out.whole(400, wire.JSON_UTF8, wire.error_body("invalid model"))
        if model and not self._knows(model):
            return await out.whole(404, wire.JSON_UTF8, wire.model_not_found(model))
        model = model or (self.models[0] if self.models else wire.DEFAULT_MODEL)
        if script.sndbuf:
            sock = out.conn.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, script.sndbuf)
        chat = req.path == "/api/chat"
        if body.get("stream") is False:
            return await self._whole(out, script, model, chat)
        return await self._stream(out, script, model, chat)

    async def _whole(self, out: _Out, script: Script, model: str, chat: bool) -> bool:
        """stream=false: Ollama accumulates everything, then answers once."""
        total = script.token_total()
        if script.error_line_after is not None:
            await asyncio.sleep(script.delay * min(script.error_line_after, total))
            return await out.whole(500, wire.JSON_UTF8, wire.error_body(script.error_message))
        if script.fault in ("stall_before_first", "stall_mid"):
            await asyncio.sleep(script.stall)
        if script.delay:
            await asyncio.sleep(script.delay * total)
        if script.fault == "reset_mid":
            return out.reset()
        content = "".join(script.token_iter())
        created = script.created_at or wire.go_time()
        final = wire.chat_final if chat else wire.generate_final
        body = wire.go_json(final(model, created, total, content, script.done_reason))
        if script.fault == "garbage_line":
            body = script.garbage
        if script.fault == "close_mid":  # truncated body, then FIN
            await out.send(out.head(200, wire.JSON_UTF8, len(body)) + body[: len(body) // 2], 0)
            return False
        if script.fault in ("split_lines", "split_utf8"):
            await out.send(out.head(200, wire.JSON_UTF8, len(body)), 0)
            await out.pieces(body, _cuts(body, script), script.split_pause, chunked=False)
            return not out.close
        return await out.whole(200, wire.JSON_UTF8, body)

    async def _stream(self, out: _Out, script: Script, model: str, chat: bool) -> bool:
        total = script.token_total()
        error_at = None if script.error_line_after is None else min(script.error_line_after, total)
        fault_at = min(script.fault_after, total) if script.fault in _MID_FAULTS else None
        if error_at == 0:  # nothing written yet: Ollama turns it into a plain JSON error
            return await out.whole(500, "application/json", wire.error_body(script.error_message))

        await out.start_chunked(200, wire.NDJSON)
        if script.fault == "stall_before_first":
            await asyncio.sleep(script.stall)

        make_line = wire.stream_line_maker(model, chat)
        fixed = script.created_at
        split = script.fault in ("split_lines", "split_utf8")
        batch: list[bytes] = []
        batch_size = 0

        async def flush() -> None:
            nonlocal batch, batch_size
            pending, batch, batch_size = batch, [], 0
            await out.lines(pending)
            await asyncio.sleep(0)  # drain() does not yield while the socket keeps up

        async def emit(line: bytes) -> None:
            nonlocal batch_size
            if split:
                await out.pieces(line, _cuts(line, script), script.split_pause, chunked=True)
            elif script.delay:
                await out.lines([line])
            else:
                batch.append(line)
                batch_size += len(line)
                if batch_size >= _BATCH_BYTES:
                    await flush()

        async def checkpoint(written: int) -> bool | None:
            """Fire faults due after `written` tokens; a bool ends the response (keep-alive)."""
            if written == error_at:
                await flush()
                await out.lines([wire.error_line(script.error_message)])
                return await out.end()
            if written != fault_at:
                return None
            await flush()
            if script.fault == "stall_mid":
                await asyncio.sleep(script.stall)
            elif script.fault == "reset_mid":
                return out.reset()
            elif script.fault == "close_mid":
                return await out.end()
            elif script.fault == "garbage_line":
                await out.lines([script.garbage])
            return None

        def line_for(token: str) -> bytes:
            return make_line(fixed or wire.go_time(), token)

        written = 0
        for token in script.token_iter():
            if written in (error_at, fault_at) and (ended := await checkpoint(written)) is not None:
                return ended
            if script.delay:
                await asyncio.sleep(script.delay)
            await emit(line_for(token))
            written += 1
        if (ended := await checkpoint(written)) is not None:
            return ended

        final = wire.chat_final if chat else wire.generate_final
        done = wire.go_json(final(model, fixed or wire.go_time(), written, "", script.done_reason))
        await emit(done if script.fault == "no_trailing_newline" else done + b"\n")
        await flush()
        return await out.end()
