"""A lean HTTP/1.1 load generator for streamed chat answers, in both client dialects.

Each connection is an asyncio protocol that writes a hand-made request and
parses the chunked answer as it arrives, splitting it into messages (Ollama's
NDJSON lines, or OpenAI's server-sent events), timing the first complete
message that carries content or a role (time to first chunk, TTFC) and the
whole answer, and checking how the answer ends: a ``"done":true`` line for
Ollama, ``data: [DONE]`` for OpenAI. Connections are kept alive between requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Literal, cast

# the requests it sends, from where the benchmarks have always imported them
from harness.chats import DIALECTS as DIALECTS
from harness.chats import ChatRequest as ChatRequest
from harness.chats import Dialect as Dialect
from harness.chats import chat_request as chat_request

State = Literal["head", "size", "data", "data_end", "trailer", "idle"]
# How messages end, the media type they come in, and whether the last one ends the answer.
_SEPARATOR = {"ollama": b"\n", "openai": b"\n\n"}
_MEDIA_TYPE = {"ollama": b"application/x-ndjson", "openai": b"text/event-stream"}


def _final_ollama(message: bytes) -> bool:
    return b'"done":true' in message


def _final_openai(message: bytes) -> bool:
    return message.strip() in (b"data: [DONE]", b"data:[DONE]")


_FINAL = {"ollama": _final_ollama, "openai": _final_openai}


@dataclass(frozen=True, slots=True)
class Result:
    ttfc: float  # seconds from writing the request to the first complete message with content
    total: float  # seconds from writing the request to the terminal chunk
    messages: int  # NDJSON lines or SSE events
    chunks: int  # HTTP chunks with data: more messages than chunks means they were batched
    error: str = ""
    # seconds from writing the request to each token message, when the request asked (timed)
    arrivals: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.error


_TOKEN = b'"content":"tok'  # how each of the fake upstream's tokens reads, in either dialect


class StreamConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._state: State = "idle"
        self._remaining = 0
        self._started = 0.0
        self._first = 0.0
        self._messages = 0
        self._chunks = 0
        self._tail = b""
        self._last = b""
        self._dialect: Dialect = "ollama"
        self._separator = _SEPARATOR["ollama"]
        self._result: asyncio.Future[Result] | None = None
        self._want = 0
        self._enough: asyncio.Future[None] | None = None
        self._timed = False
        self._arrivals: list[float] = []

    @classmethod
    async def open(cls, host: str, port: int) -> StreamConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def request(self, request: ChatRequest) -> Result:
        """Send a request and wait for its whole answer."""
        return await self._send(request)

    async def read_messages(self, request: ChatRequest, count: int) -> None:
        """Send a request and return once ``count`` messages of the answer arrived."""
        loop = asyncio.get_running_loop()
        self._want, self._enough = count, loop.create_future()
        result = self._send(request)
        done, _ = await asyncio.wait((self._enough, result), return_when=asyncio.FIRST_COMPLETED)
        if self._enough not in done:
            raise RuntimeError(f"the answer ended before {count} messages: {result.result()}")

    def _send(self, request: ChatRequest) -> asyncio.Future[Result]:
        if self._transport is None or self._result is not None:
            raise RuntimeError("connection closed or busy")
        self._result = asyncio.get_running_loop().create_future()
        self._state, self._messages, self._chunks, self._first = "head", 0, 0, 0.0
        self._tail, self._last = b"", b""
        self._dialect, self._separator = request.dialect, _SEPARATOR[request.dialect]
        self._timed, self._arrivals = request.timed, []
        self._started = time.perf_counter()
        self._transport.write(request.raw)
        return self._result

    # ---- protocol callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._finish(time.perf_counter(), f"connection closed ({exc or 'EOF'})")

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self._buf + data if self._buf else data
        pos = 0
        while pos < len(buf) and self._state != "idle":
            step = self._step(buf, pos, now)
            if step < 0:
                break
            pos = step
        if self._state == "idle" and pos < len(buf) and not self.closed:
            self._fail(now, "unexpected bytes after the answer")
        self._buf = buf[pos:]

    # ---- chunked framing --------------------------------------------------------------------

    def _step(self, buf: bytes, pos: int, now: float) -> int:
        """Parse one framing element at ``pos``; the new position, or -1 to wait for more."""
        state = self._state
        if state == "data":
            end = min(len(buf), pos + self._remaining)
            self._body(buf[pos:end], now)
            self._remaining -= end - pos
            if not self._remaining:
                self._state = "data_end"
            return end
        if state == "data_end":
            if len(buf) - pos < 2:
                return -1
            self._state = "size"
            return pos + 2
        end = buf.find(b"\r\n\r\n" if state == "head" else b"\r\n", pos)
        if end < 0:
            return -1
        if state == "head":
            self._head(buf[pos:end], now)
            return end + 4
        if state == "size":
            self._remaining = int(buf[pos:end].split(b";", 1)[0], 16)
            self._state = "data" if self._remaining else "trailer"
            self._chunks += 1 if self._remaining else 0
            return end + 2
        if end == pos:  # the empty line after the last chunk
            self._finish(now)
            self._state = "idle"
        return end + 2

    def _head(self, head: bytes, now: float) -> None:
        status = head.split(b"\r\n", 1)[0]
        lower = head.lower()
        if not status.startswith(b"HTTP/1.1 200 "):
            self._fail(now, status.decode("latin-1"))
        elif b"transfer-encoding: chunked" not in lower:
            self._fail(now, "the answer is not chunked")
        elif b"content-type: " + _MEDIA_TYPE[self._dialect] not in lower:
            self._fail(now, f"the answer is not {_MEDIA_TYPE[self._dialect].decode()}")
        else:
            self._state = "size"

    def _body(self, data: bytes, now: float) -> None:
        sep = self._separator
        text = self._tail + data if self._tail else data
        count = text.count(sep)
        if not count:
            self._tail = text
            return
        end = text.rfind(sep)
        if not self._first:
            self._first_content(text[:end], now)
        self._messages += count
        if self._timed:
            self._arrivals += [now - self._started] * text.count(_TOKEN, 0, end)
        start = text.rfind(sep, 0, end)
        self._last = text[start + len(sep) if start >= 0 else 0 : end]
        self._tail = text[end + len(sep) :]
        enough = self._enough
        if enough is not None and self._messages >= self._want and not enough.done():
            enough.set_result(None)

    def _first_content(self, messages: bytes, now: float) -> None:
        """Time the first message with content or a role (an SSE comment is neither)."""
        if b'"content"' in messages or b'"role"' in messages:
            self._first = now

    def _fail(self, now: float, error: str) -> None:
        self._finish(now, error)
        self._state = "idle"
        self.close()

    def _finish(self, now: float, error: str = "") -> None:
        result, self._result = self._result, None
        if result is None or result.done():
            return
        if not error and not _FINAL[self._dialect](self._last):
            error = f"the last message is not final: {self._last[:200]!r}"
        elif not error and not self._first:
            error = "no message carried content or a role"
        ttfc = self._first - self._started if self._first else float("nan")
        arrivals = tuple(self._arrivals)
        total = now - self._started
        result.set_result(Result(ttfc, total, self._messages, self._chunks, error, arrivals))


async def run_load(
    host: str,
    port: int,
    request: ChatRequest,
    requests: int,
    concurrency: int,
    stagger: float = 0,
) -> tuple[list[Result], float]:
    """Send ``requests`` copies of ``request`` over ``concurrency`` kept-alive connections,
    the i-th connection starting ``i * stagger`` seconds after the first (so that streams
    of equal length start and end spread out rather than all at once).

    Returns the results and the wall-clock seconds the whole load took.
    """
    connections = await asyncio.gather(
        *(StreamConnection.open(host, port) for _ in range(concurrency))
    )
    results: list[Result] = []
    left = iter(range(requests))

    async def worker(connection: StreamConnection, delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in left:
            if connection.closed:
                connection = await StreamConnection.open(host, port)
            results.append(await connection.request(request))
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(c, i * stagger) for i, c in enumerate(connections)))
    return results, time.perf_counter() - started


def checked(results: list[Result], what: str) -> list[Result]:
    """The results of a load, or an error if any of its streams failed."""
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)}/{len(results)} {what} streams failed: {bad[0].error}")
    return results


async def hangup_trial(
    host: str, port: int, raw: ChatRequest, lines: int, hangups: asyncio.Queue[float]
) -> float:
    """Read a few lines of a slow answer, hang up, and time until the upstream notices
    (it puts the time it saw the connection close in ``hangups``)."""
    while not hangups.empty():
        hangups.get_nowait()
    connection = await StreamConnection.open(host, port)
    await connection.read_messages(raw, lines)
    closed_at = time.perf_counter()
    connection.close()
    try:
        return await asyncio.wait_for(hangups.get(), 2) - closed_at
    except TimeoutError:
        return math.inf
