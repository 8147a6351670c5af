"""A lean HTTP/1.1 load generator for streamed NDJSON answers.

Each connection is an asyncio protocol that writes a hand-made request and
parses the chunked answer as it arrives, timing the first complete NDJSON line
(time to first chunk, TTFC) and the whole answer, and checking that the last
line says ``"done":true``. Connections are kept alive between requests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal, cast

import orjson

State = Literal["head", "size", "data", "data_end", "trailer", "idle"]


@dataclass(frozen=True, slots=True)
class Result:
    ttfc: float  # seconds from writing the request to the first complete line
    total: float  # seconds from writing the request to the terminal chunk
    lines: int
    chunks: int  # HTTP chunks with data: more lines than chunks means lines were batched
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def chat_request(host: str, port: int, tokens: int, delay_ms: float = 0) -> bytes:
    """A streamed /api/chat request asking the fake upstream for ``tokens`` tokens."""
    body = orjson.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": "Say something."}],
            "options": {"num_predict": tokens},
            "bench_delay_ms": delay_ms,
        }
    )
    head = (
        f"POST /api/chat HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: cortex-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class StreamConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._state: State = "idle"
        self._remaining = 0
        self._started = 0.0
        self._first = 0.0
        self._lines = 0
        self._chunks = 0
        self._tail = b""
        self._last_line = b""
        self._result: asyncio.Future[Result] | None = None
        self._want_lines = 0
        self._enough_lines: asyncio.Future[None] | None = None

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

    async def request(self, raw: bytes) -> Result:
        """Send a request and wait for its whole answer."""
        return await self._send(raw)

    async def read_lines(self, raw: bytes, count: int) -> None:
        """Send a request and return once ``count`` lines of the answer arrived."""
        loop = asyncio.get_running_loop()
        self._want_lines, self._enough_lines = count, loop.create_future()
        result = self._send(raw)
        done, _ = await asyncio.wait(
            (self._enough_lines, result), return_when=asyncio.FIRST_COMPLETED
        )
        if self._enough_lines not in done:
            raise RuntimeError(f"the answer ended before {count} lines: {result.result()}")

    def _send(self, raw: bytes) -> asyncio.Future[Result]:
        if self._transport is None or self._result is not None:
            raise RuntimeError("connection closed or busy")
        self._result = asyncio.get_running_loop().create_future()
        self._state, self._lines, self._chunks = "head", 0, 0
        self._tail, self._last_line = b"", b""
        self._started = time.perf_counter()
        self._transport.write(raw)
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
        if not status.startswith(b"HTTP/1.1 200 "):
            self._fail(now, status.decode("latin-1"))
        elif b"transfer-encoding: chunked" not in head.lower():
            self._fail(now, "the answer is not chunked")
        else:
            self._state = "size"

    def _body(self, data: bytes, now: float) -> None:
        newlines = data.count(b"\n")
        if not newlines:
            self._tail += data
            return
        if not self._lines:
            self._first = now
        self._lines += newlines
        text = self._tail + data if self._tail else data
        end = text.rfind(b"\n")
        self._last_line = text[text.rfind(b"\n", 0, end) + 1 : end]
        self._tail = text[end + 1 :]
        enough = self._enough_lines
        if enough is not None and self._lines >= self._want_lines and not enough.done():
            enough.set_result(None)

    def _fail(self, now: float, error: str) -> None:
        self._finish(now, error)
        self._state = "idle"
        self.close()

    def _finish(self, now: float, error: str = "") -> None:
        result, self._result = self._result, None
        if result is None or result.done():
            return
        if not error and b'"done":true' not in self._last_line:
            error = f"the last line is not final: {self._last_line[:200]!r}"
        ttfc = self._first - self._started if self._lines else float("nan")
        result.set_result(Result(ttfc, now - self._started, self._lines, self._chunks, error))


async def run_load(
    host: str, port: int, raw: bytes, requests: int, concurrency: int
) -> tuple[list[Result], float]:
    """Send ``requests`` copies of ``raw`` over ``concurrency`` kept-alive connections.

    Returns the results and the wall-clock seconds the whole load took.
    """
    connections = await asyncio.gather(
        *(StreamConnection.open(host, port) for _ in range(concurrency))
    )
    results: list[Result] = []
    left = iter(range(requests))

    async def worker(connection: StreamConnection) -> None:
        for _ in left:
            if connection.closed:
                connection = await StreamConnection.open(host, port)
            results.append(await connection.request(raw))
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    return results, time.perf_counter() - started
