"""HTTP/1.1 by hand on asyncio streams: requests in, framed and fault-injected responses out."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from tests.fakes import ollama_wire as wire
from tests.fakes.script import MID_FAULTS, Script

BATCH_BYTES = 32 * 1024
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


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
class Request:
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


class PeerClosed(Exception):
    pass


class BadRequest(Exception):
    pass


class Conn:
    """Buffered reads over a StreamReader, so a watcher can read ahead without losing bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        self.aborted = False

    async def _fill(self) -> None:
        if self.eof:
            raise PeerClosed
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            raise PeerClosed
        self.buf += data

    async def watch(self) -> None:
        """Read ahead until the peer closes; returns (or raises) only then."""
        with suppress(PeerClosed):
            while True:
                await self._fill()

    async def read_until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while (idx := self.buf.find(sep, start)) < 0:
            if len(self.buf) > limit:
                raise BadRequest("line too long")
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

    async def read_request(self) -> Request | None:
        if self.eof and not self.buf:
            return None
        try:
            head = await self.read_until(b"\r\n\r\n", MAX_HEAD)
        except PeerClosed:
            if self.buf.strip():
                raise
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(lines[0])
        req = Request(parts[0], parts[1], parts[2])
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(line)
            key = name.strip().lower()
            value = value.strip()
            req.headers[key] = f"{req.headers[key]}, {value}" if key in req.headers else value
        if req.headers.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            req.body = await self._read_body(req.headers)
        except ValueError as exc:  # unparsable Content-Length or chunk size
            raise BadRequest(str(exc)) from exc
        return req

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                size_line = await self.read_until(b"\r\n", MAX_HEAD)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await self.read_until(b"\r\n", MAX_HEAD) != b"\r\n":
                        pass  # trailers
                    return bytes(body)
                body += await self.read_exactly(size)
                await self.read_exactly(2)
                if len(body) > MAX_BODY:
                    raise BadRequest("body too large")
        length = int(headers.get("content-length", "0") or "0")
        if not 0 <= length <= MAX_BODY:
            raise BadRequest("bad content-length")
        return await self.read_exactly(length)


class Out:
    """Response writer. A write's payload is counted once the kernel took it all, or after
    drain() otherwise; the count is updated under `lock`, together with the write, so no
    reader can see the bytes arrive before the count includes them."""

    def __init__(
        self, conn: Conn, rec: RecordedRequest, close: bool, lock: threading.Condition
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

    def set_sndbuf(self, size: int | None) -> None:
        if size:
            sock = self.conn.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def reset(self) -> bool:
        """Abort with an RST (SO_LINGER 0) instead of a FIN."""
        sock = self.conn.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.aborted = True
        self.conn.writer.transport.abort()
        return False


def cut_points(data: bytes, script: Script) -> list[int]:
    """Where split_lines / split_utf8 cut `data` into separately written pieces."""
    if script.fault == "split_utf8":
        # Cut in the middle of every multi-byte UTF-8 sequence (at its lead byte + size // 2).
        cuts = [i + (2 if b >= 0xF0 else 1) for i, b in enumerate(data) if b >= 0xC0]
        cuts = cuts or [len(data) // 2]
    else:
        cuts = list(script.split_at) if script.split_at else [1, len(data) // 2, len(data) - 1]
    return sorted({c for c in cuts if 0 < c < len(data)})


Reply = tuple[int, str, bytes]  # status, Content-Type, body


@dataclass
class Stream:
    """A streamed answer. `units` yields one line per token (built lazily, when due, so
    timestamps are fresh); faults count those. `head` goes first, `tail(written)` last."""

    content_type: str
    units: Iterator[bytes]
    total: int
    tail: Callable[[int], list[bytes]]
    error_line: bytes  # the in-band error for error_line_after
    head: Sequence[bytes] = ()
    early_error: Reply | None = None  # error_line_after=0: answer this instead of streaming


class _Lines:
    """Writes lines as chunks: batched, one by one (with a delay), or cut into pieces."""

    def __init__(self, out: Out, script: Script) -> None:
        self.out = out
        self.script = script
        self.split = script.fault in ("split_lines", "split_utf8")
        self.batch: list[bytes] = []
        self.size = 0

    async def flush(self) -> None:
        pending, self.batch, self.size = self.batch, [], 0
        await self.out.lines(pending)
        await asyncio.sleep(0)  # drain() does not yield while the socket keeps up

    async def emit(self, line: bytes) -> None:
        script = self.script
        if self.split:
            await self.out.pieces(line, cut_points(line, script), script.split_pause, True)
        elif script.delay:
            await self.out.lines([line])
        else:
            self.batch.append(line)
            self.size += len(line)
            if self.size >= BATCH_BYTES:
                await self.flush()


async def pump(out: Out, script: Script, stream: Stream) -> bool:
    """Stream `stream` with the script's timing and faults. Returns keep-alive."""
    total = stream.total
    error_at = None if script.error_line_after is None else min(script.error_line_after, total)
    fault_at = min(script.fault_after, total) if script.fault in MID_FAULTS else None
    if error_at == 0 and stream.early_error is not None:
        return await out.whole(*stream.early_error)

    await out.start_chunked(200, stream.content_type)
    if script.fault == "stall_before_first":
        await asyncio.sleep(script.stall)
    lines = _Lines(out, script)
    for line in stream.head:
        await lines.emit(line)

    async def fire(written: int) -> bool | None:
        """Faults due after `written` tokens; a bool ends the response (keep-alive)."""
        await lines.flush()
        if written == error_at:
            await out.lines([stream.error_line])
            return await out.end()
        if script.fault == "stall_mid":
            await asyncio.sleep(script.stall)
        elif script.fault == "reset_mid":
            return out.reset()
        elif script.fault == "close_mid":
            return await out.end()
        elif script.fault == "garbage_line":
            await out.lines([script.garbage])
        return None

    written = 0
    while True:
        if written in (error_at, fault_at) and (ended := await fire(written)) is not None:
            return ended
        if written == total:
            break
        if script.delay:
            await asyncio.sleep(script.delay)
        await lines.emit(next(stream.units))
        written += 1
    tail = stream.tail(written)
    if script.fault == "no_trailing_newline" and tail:
        tail[-1] = tail[-1].rstrip(b"\n")
    for line in tail:
        await lines.emit(line)
    await lines.flush()
    return await out.end()


async def whole(
    out: Out, script: Script, total: int, ok: Callable[[], Reply], error: Reply
) -> bool:
    """A non-streamed answer (computed by `ok` when due) with the script's timing and faults."""
    if script.error_line_after is not None:
        await asyncio.sleep(script.delay * min(script.error_line_after, total))
        return await out.whole(*error)
    if script.fault in ("stall_before_first", "stall_mid"):
        await asyncio.sleep(script.stall)
    if script.delay:
        await asyncio.sleep(script.delay * total)
    if script.fault == "reset_mid":
        return out.reset()
    status, content_type, body = ok()
    if script.fault == "garbage_line":
        body = script.garbage
    if script.fault == "close_mid":  # truncated body, then FIN
        await out.send(out.head(status, content_type, len(body)) + body[: len(body) // 2], 0)
        return False
    if script.fault in ("split_lines", "split_utf8"):
        await out.send(out.head(status, content_type, len(body)), 0)
        await out.pieces(body, cut_points(body, script), script.split_pause, chunked=False)
        return not out.close
    return await out.whole(status, content_type, body)


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """The request's JSON value, or an error message (empty body included)."""
    if not body.strip():
        return None, "missing request body"
    try:
        return json.loads(body), None
    except ValueError as exc:
        return None, str(exc)
