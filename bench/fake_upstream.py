"""A minimal, fast model server for benchmarks, in both dialects: one message per token.

``POST /api/chat`` (Ollama) answers with one NDJSON line per token, then the
``"done":true`` line. ``POST /v1/chat/completions`` (OpenAI-compatible) answers
with one ``chat.completion.chunk`` server-sent event per token (the first also
carries the role), a finish event, a usage event when
``stream_options.include_usage`` asks for it, then ``data: [DONE]``. Every
message is written as its own HTTP chunk, waiting for the socket to drain when
it pushes back. The status line travels with the first token, as Go's net/http
(Ollama) sends it on the first flush.

The knobs ride in the model name, which Córtex keeps when it translates a
request from one dialect to the other (it rebuilds the body, dropping fields it
does not know): ``bench-t2000-d5`` asks for 2000 tokens, sleeping 5 ms before
each; ``-a200`` instead answers with one tool call whose arguments come in 200 pieces
(OpenAI: one event per piece, as servers stream them; Ollama: the whole call in one
line once the last piece is made, as Ollama sends calls). Without them the token count
comes from ``options.num_predict`` or ``max_tokens`` / ``max_completion_tokens``
(default 10) and the delay from a ``bench_delay_ms`` field (default 0). Without a delay
the server still yields to its event loop between tokens, as a real model server does
between forward passes.

Run as a script it serves on 127.0.0.1 and prints its URL. The benchmark also
runs it inside its own event loop, with ``on_hangup``, to see exactly when a
client that went away mid-answer is noticed on this side.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
from harness.cli import run

Hangup = Callable[[float], None]

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"
_MAX_REQUEST = 1024 * 1024
_CREATED_AT = b"2025-01-01T12:00:00.123456789Z"
_CREATED = 1735732800
_PROMPT_TOKENS = 26
_KNOBS = re.compile(r"-(t|d|a)(\d+(?:\.\d+)?)")


def _whole(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _token_line(model: bytes, index: int) -> bytes:
    return (
        b'{"model":"%b","created_at":"%b","message":{"role":"assistant","content":"tok%d "},'
        b'"done":false}\n' % (model, _CREATED_AT, index)
    )


def _final_line(model: bytes, count: int) -> bytes:
    return (
        b'{"model":"%b","created_at":"%b","message":{"role":"assistant","content":""},'
        b'"done_reason":"stop","done":true,"total_duration":%d,"load_duration":2154458,'
        b'"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":%d,'
        b'"eval_duration":%d}\n' % (model, _CREATED_AT, 400_000_000, count, count * 15_000_000)
    )


def _event(model: bytes, delta: bytes, finish: bytes, usage: bytes) -> bytes:
    return (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":%d,'
        b'"model":"%b","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":%b,'
        b'"logprobs":null,"finish_reason":%b}]%b}\n\n' % (_CREATED, model, delta, finish, usage)
    )


def _usage_event(model: bytes, count: int) -> bytes:
    return (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":%d,'
        b'"model":"%b","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":%d,'
        b'"completion_tokens":%d,"total_tokens":%d}}\n\n'
        % (_CREATED, model, _PROMPT_TOKENS, count, _PROMPT_TOKENS + count)
    )


def tool_pieces(count: int) -> list[str]:
    """A tool call's arguments, a JSON object, cut into ``count`` (at least 2) pieces."""
    return ['{"query":"', *(f"p{i} " for i in range(max(count, 2) - 2)), '"}']


def _tool_line(model: bytes, pieces: list[str]) -> bytes:
    call = {"function": {"name": "lookup", "arguments": orjson.loads("".join(pieces))}}
    message = {"role": "assistant", "content": "", "tool_calls": [call]}
    line = {"model": model.decode(), "created_at": _CREATED_AT.decode(), "message": message}
    return orjson.dumps(line | {"done": False}) + b"\n"


def _tool_delta(index: int, piece: str) -> bytes:
    call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
    if index == 0:
        call |= {"id": "call_bench", "type": "function"}
        call["function"]["name"] = "lookup"
    delta: dict[str, Any] = {"tool_calls": [call]}
    return orjson.dumps({"role": "assistant"} | delta if index == 0 else delta)


def knobs(request: dict[str, Any]) -> tuple[bytes, int, float]:
    """The model name, the token count and the delay before each token (seconds)."""
    model = str(request.get("model") or "bench")
    options = request.get("options") or {}
    count = options.get("num_predict") or request.get("max_completion_tokens")
    count = count or request.get("max_tokens") or 10
    delay_ms = request.get("bench_delay_ms") or 0
    for knob, value in _KNOBS.findall(model):
        if knob == "t":
            count = int(float(value))
        elif knob == "a":
            continue
        else:
            delay_ms = float(value)
    return model.encode(), int(count), float(delay_ms) / 1000


class _Connection(asyncio.Protocol):
    """One client connection: requests in order, an answer streamed from a task."""

    def __init__(self, on_hangup: Hangup | None) -> None:
        self._on_hangup = on_hangup
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._answer: asyncio.Task[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._answer is None:
            self._next_request()

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _gone(self) -> None:
        """The client went away; if mid-answer, say when and stop generating."""
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            if self._on_hangup is not None:
                self._on_hangup(time.perf_counter())
            answer.cancel()
        self.resume_writing()

    def _next_request(self) -> None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > _MAX_REQUEST:
                self._close()
            return
        head = self._buf[:end].decode("latin-1").split("\r\n")
        length = _content_length(head[1:])
        total = end + 4 + length
        if len(self._buf) < total:
            return
        body, self._buf = self._buf[end + 4 : total], self._buf[total:]
        method, _, rest = head[0].partition(" ")
        path = rest.partition(" ")[0]
        self._answer = asyncio.ensure_future(self._respond(method, path, body))
        self._answer.add_done_callback(self._answered)

    def _answered(self, answer: asyncio.Task[None]) -> None:
        if answer is not self._answer:
            return
        self._answer = None
        if not answer.cancelled() and answer.exception() is not None:
            self._close()
        elif self._buf:
            self._next_request()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def _respond(self, method: str, path: str, body: bytes) -> None:
        if (method, path) == ("POST", "/api/chat"):
            await self._stream(orjson.loads(body))
        elif (method, path) == ("POST", "/v1/chat/completions"):
            await self._stream_openai(orjson.loads(body))
        elif (method, path) == ("GET", "/api/tags"):
            self._write(_whole(b"200 OK", b"application/json", b'{"models":[]}'))
        elif (method, path) == ("GET", "/v1/models"):
            self._write(_whole(b"200 OK", b"application/json", b'{"object":"list","data":[]}'))
        elif path == "/":
            self._write(_whole(b"200 OK", b"text/plain", b"Ollama is running"))
        else:
            self._write(_whole(b"404 Not Found", b"text/plain", b"404 page not found"))

    async def _stream(self, request: dict[str, Any]) -> None:
        model, count, delay = knobs(request)
        pending = _HEAD
        if pieces := _tool_call(model):
            await asyncio.sleep(delay * len(pieces))
            await self._send(pending + _chunk(_tool_line(model, pieces)))
            pending, count = b"", 1
        for index in range(0 if pieces else count):
            await asyncio.sleep(delay)
            await self._send(pending + _chunk(_token_line(model, index)))
            pending = b""
        await self._send(pending + _chunk(_final_line(model, count)) + _LAST_CHUNK)

    async def _stream_openai(self, request: dict[str, Any]) -> None:
        model, count, delay = knobs(request)
        with_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        usage = b',"usage":null' if with_usage else b""
        pending = _SSE_HEAD
        pieces = _tool_call(model)
        for index, piece in enumerate(pieces):
            await asyncio.sleep(delay)
            await self._send(
                pending + _chunk(_event(model, _tool_delta(index, piece), b"null", usage))
            )
            pending = b""
        for index in range(0 if pieces else count):
            await asyncio.sleep(delay)
            role = b'"role":"assistant",' if index == 0 else b""
            delta = b'{%b"content":"tok%d "}' % (role, index)
            await self._send(pending + _chunk(_event(model, delta, b"null", usage)))
            pending = b""
        finish = b'"tool_calls"' if pieces else b'"stop"'
        await self._send(pending + _chunk(_event(model, b"{}", finish, usage)))
        if with_usage:
            await self._send(_chunk(_usage_event(model, count)))
        await self._send(_chunk(b"data: [DONE]\n\n") + _LAST_CHUNK)

    async def _send(self, data: bytes) -> None:
        self._write(data)
        if self._writable is not None:
            await self._writable

    def _write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("client went away")
        self._transport.write(data)


def _tool_call(model: bytes) -> list[str]:
    """The pieces of the tool call the model name asks for (``-a200``), or none."""
    asked = [int(float(v)) for k, v in _KNOBS.findall(model.decode()) if k == "a"]
    return tool_pieces(asked[0]) if asked else []


def _content_length(header_lines: list[str]) -> int:
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value)
    return 0


async def serve(host: str = "127.0.0.1", port: int = 0, on_hangup: Hangup | None = None) -> Any:
    """Start serving in the running loop; returns the server (``.sockets`` has the port)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(on_hangup), host, port, backlog=4096)


async def _main(port: int) -> None:
    server = await serve(port=port)
    host, bound = server.sockets[0].getsockname()[:2]
    print(f"http://{host}:{bound}", flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        run(_main(args.port))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
