"""The one invariant every answer Córtex relays must keep, checked on the raw wire.

A client gets either the complete, byte-intact answer with its proper end (Ollama's
``"done": true`` line, OpenAI's ``data: [DONE]``, Anthropic's ``message_stop``, the
Responses API's ``response.completed`` or ``response.incomplete``, a whole JSON object)
or an explicit error: a 4xx/5xx status with a body in the dialect's error shape, or an
in-band error as the stream's last frame (Anthropic's ``event: error``, the Responses
API's ``response.failed``). Anything else (a stream that just stops, an HTTP message
cut short, a 200 that is not the answer) is a violation.

Used by the fault matrix (``test_fault_matrix.py``) and by the soak (``bench/soak.py``);
``judge`` is pure, ``exchange`` is a blocking raw-socket client that hides nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Dialect = Literal["ollama", "openai", "anthropic", "responses"]
Outcome = Literal["complete", "error"]
PATHS: dict[Dialect, str] = {
    "ollama": "/api/chat",
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "responses": "/v1/responses",
}
PROMPT = "Cuéntame un cuento"


@dataclass(frozen=True)
class ClientFraming:
    """One way a client asks for a chat answer."""

    name: str
    dialect: Dialect
    stream: bool
    sse: bool = False  # Ollama's chat with Accept: text/event-stream

    @property
    def path(self) -> str:
        return PATHS[self.dialect]

    def payload(self, model: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "stream": self.stream}
        if self.dialect == "responses":
            body["input"] = PROMPT
        else:
            body["messages"] = [{"role": "user", "content": PROMPT}]
        if self.dialect == "anthropic":
            body["max_tokens"] = 4096  # required; Córtex's default for a Messages upstream
        body.update(extra)
        return body

    def headers(self) -> dict[str, str]:
        if self.dialect == "anthropic":
            return {"anthropic-version": "2023-06-01"}
        return {"Accept": "text/event-stream"} if self.sse else {}


FRAMINGS = (
    ClientFraming("ollama-ndjson", "ollama", stream=True),
    ClientFraming("ollama-sse", "ollama", stream=True, sse=True),
    ClientFraming("openai-sse", "openai", stream=True),
    ClientFraming("anthropic-sse", "anthropic", stream=True),
    ClientFraming("responses-sse", "responses", stream=True),
    ClientFraming("ollama-whole", "ollama", stream=False),
    ClientFraming("openai-whole", "openai", stream=False),
    ClientFraming("anthropic-whole", "anthropic", stream=False),
    ClientFraming("responses-whole", "responses", stream=False),
)
STREAMING = tuple(f for f in FRAMINGS if f.stream)


class Violation(AssertionError):
    """The answer broke the invariant."""


@dataclass
class Reply:
    """One HTTP response as it came off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes  # de-chunked
    complete: bool  # the HTTP message ended properly (last chunk, or Content-Length reached)
    raw: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Verdict:
    outcome: Outcome
    text: str = ""  # the answer's content, joined
    error: str = ""  # the error's message
    status: int = 200
    in_band: bool = False
    frames: list[Any] = field(default_factory=list)


# ---- the wire ------------------------------------------------------------------------------


def request_bytes(
    framing: ClientFraming, payload: dict[str, Any], *, keep_alive: bool = False
) -> bytes:
    body = orjson.dumps(payload)
    lines = [
        f"POST {framing.path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in framing.headers().items()),
    ]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(
    host: str,
    port: int,
    framing: ClientFraming,
    payload: dict[str, Any],
    timeout: float = 15.0,
) -> Reply:
    """Send one request on a fresh connection and read the response to the server's close."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request_bytes(framing, payload))
        data = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise Violation(f"no end of the response within {timeout:g} s") from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return parse_response(bytes(data))


def parse_response(data: bytes) -> Reply:
    """An HTTP/1.1 response read to the connection's end."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise Violation(f"the connection closed before the response headers: {data[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, complete = dechunk(rest)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        body, complete = rest[:length], len(rest) >= length
    else:
        body, complete = rest, True
    return Reply(status, headers, body, complete, data)


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked body, and whether its last (zero-size) chunk arrived."""
    out = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return bytes(out), False
        size = int(data[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out), True
        start = end + 2
        if len(data) < start + size + 2:
            out += data[start : start + size]
            return bytes(out), False
        out += data[start : start + size]
        pos = start + size + 2


# ---- the invariant -------------------------------------------------------------------------

LEAK_MARKERS = ("Traceback", 'File "', "site-packages")


def judge(
    framing: ClientFraming,
    reply: Reply,
    expected: str | None,
    *,
    secrets: Iterable[str] = (),
) -> Verdict:
    """The reply's outcome, or ``Violation`` if it is neither the whole answer nor an explicit
    error. ``expected`` is the answer's text (None: any text); ``secrets`` are strings an error
    must never show (the upstream's address, its key)."""
    if not reply.complete:
        raise Violation(
            f"the HTTP message was cut short (status {reply.status}, {len(reply.body)} bytes)"
        )
    if reply.status != 200:
        verdict = _error_status(framing, reply)
    elif not framing.stream:
        verdict = _whole(framing, reply)
    elif framing.dialect == "openai":
        verdict = _openai_stream(reply)
    elif framing.dialect == "anthropic":
        verdict = _anthropic_stream(reply)
    elif framing.dialect == "responses":
        verdict = _responses_stream(reply)
    elif framing.sse:
        verdict = _ollama_sse(reply)
    else:
        verdict = _ollama_ndjson(reply)
    if verdict.outcome == "error":
        _clean(verdict.error, secrets)
    elif expected is not None and verdict.text != expected:
        raise Violation(f"the answer is not intact: {verdict.text!r} != {expected!r}")
    return verdict


def _clean(message: str, secrets: Iterable[str]) -> None:
    if not message.strip():
        raise Violation("an error without a message")
    for marker in (*LEAK_MARKERS, *secrets):
        if marker and marker in message:
            raise Violation(f"an error message shows {marker!r}: {message!r}")


def _json(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise Violation(f"{what} is not JSON: {data[:200]!r}") from None


def error_message(dialect: Dialect, body: Any) -> str:
    """The message of an error object in the dialect's shape, or ``Violation``."""
    if not isinstance(body, dict) or "error" not in body:
        raise Violation(f"not an error object: {body!r}")
    error = body["error"]
    if dialect == "anthropic":
        if (
            set(body) != {"type", "error"}
            or body["type"] != "error"
            or not isinstance(error, dict)
            or not isinstance(error.get("type"), str)
            or not isinstance(error.get("message"), str)
        ):
            shape = '{"type": "error", "error": {"type", "message"}}'
            raise Violation(f"not Anthropic's error shape {shape}: {body!r}")
        return str(error["message"])
    if dialect == "ollama":
        if set(body) != {"error"} or not isinstance(error, str):
            raise Violation(f'not Ollama\'s error shape {{"error": str}}: {body!r}')
        return error
    if (
        set(body) != {"error"}
        or not isinstance(error, dict)
        or not isinstance(error.get("message"), str)
    ):
        raise Violation(f'not OpenAI\'s error shape {{"error": {{"message", ...}}}}: {body!r}')
    return str(error["message"])


def _error_status(framing: ClientFraming, reply: Reply) -> Verdict:
    if not 400 <= reply.status <= 599:
        raise Violation(f"status {reply.status} is neither the answer nor an error")
    if "json" not in reply.content_type:
        raise Violation(f"an error status with content type {reply.content_type!r}")
    message = error_message(framing.dialect, _json(reply.body, "the error body"))
    return Verdict("error", error=message, status=reply.status)


def _whole(framing: ClientFraming, reply: Reply) -> Verdict:
    if "json" not in reply.content_type:
        raise Violation(f"a whole answer with content type {reply.content_type!r}")
    body = _json(reply.body, "the whole answer")
    # a Response object carries "error": null; the other dialects' answers have no "error" key
    shown = body.get("error") is not None if framing.dialect == "responses" else "error" in body
    if not isinstance(body, dict) or shown or body.get("type") == "error":
        raise Violation(f"status 200 with something that is not the answer: {reply.body[:300]!r}")
    if framing.dialect == "anthropic":
        return _anthropic_whole(body)
    if framing.dialect == "responses":
        return _responses_whole(body)
    if framing.dialect == "ollama":
        if body.get("done") is not True:
            raise Violation(f"a whole Ollama answer without done: true: {body!r}")
        message = body.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise Violation(f"a whole Ollama chat answer without message.content: {body!r}")
        return Verdict("complete", text=message["content"], frames=[body])
    choices = body.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        raise Violation(f"a chat.completion without one choice: {body!r}")
    choice = choices[0]
    if not choice.get("finish_reason"):
        raise Violation(f"a chat.completion without finish_reason: {body!r}")
    return Verdict("complete", text=choice["message"].get("content") or "", frames=[body])


def _ollama_ndjson(reply: Reply) -> Verdict:
    if not reply.content_type.startswith("application/x-ndjson"):
        raise Violation(f"an NDJSON stream with content type {reply.content_type!r}")
    if reply.body and not reply.body.endswith(b"\n"):
        raise Violation(f"the stream ends inside a line: {reply.body[-200:]!r}")
    lines = [_json(line, "an NDJSON line") for line in reply.body.split(b"\n") if line]
    return _ollama_frames(lines, [False] * len(lines))


def _ollama_sse(reply: Reply) -> Verdict:
    if not reply.content_type.startswith("text/event-stream"):
        raise Violation(f"an SSE stream with content type {reply.content_type!r}")
    events = sse_events(reply.body)
    frames = [_json(data.encode(), "an SSE event's data") for _, data in events]
    return _ollama_frames(frames, [kind == "error" for kind, _ in events])


def _ollama_frames(frames: list[Any], error_events: list[bool]) -> Verdict:
    text: list[str] = []
    for index, (frame, is_error_event) in enumerate(zip(frames, error_events, strict=True)):
        last = index == len(frames) - 1
        if not isinstance(frame, dict):
            raise Violation(f"a frame that is not a JSON object: {frame!r}")
        if "error" in frame or is_error_event:
            if not last:
                raise Violation(f"an error frame that is not the last one: {frames[index:]!r}")
            return Verdict("error", error=error_message("ollama", frame), in_band=True)
        message = frame.get("message")
        if not isinstance(message, dict):
            raise Violation(f"a chat line without message: {frame!r}")
        text.append(message.get("content") or "")
        if frame.get("done") is True:
            if not last:
                raise Violation(f"frames after done: true: {frames[index + 1 :]!r}")
            return Verdict("complete", text="".join(text), frames=frames)
    raise Violation(
        f"silent truncation: the stream ended after {len(frames)} frames with neither "
        f'"done": true nor an error (text so far {"".join(text)!r})'
    )


def sse_events(body: bytes) -> list[tuple[str, str]]:
    """(event type, data) of each event; comments (heartbeats) left out. A stream that
    stops inside an event is a violation."""
    if body and not body.endswith(b"\n\n"):
        raise Violation(f"the stream ends inside an event: {body[-200:]!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Violation(f"the stream is not valid UTF-8: {exc}") from None
    events = []
    for block in text.split("\n\n"):
        kind, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
        if data:
            events.append((kind, "\n".join(data)))
    return events


def _openai_stream(reply: Reply) -> Verdict:
    if not reply.content_type.startswith("text/event-stream"):
        raise Violation(f"an SSE stream with content type {reply.content_type!r}")
    events = sse_events(reply.body)
    text: list[str] = []
    finished = False
    frames: list[Any] = []
    for index, (kind, data) in enumerate(events):
        last = index == len(events) - 1
        if data == "[DONE]":
            if not last:
                raise Violation(f"events after [DONE]: {events[index + 1 :]!r}")
            if not finished:
                raise Violation("[DONE] without a finish_reason before it")
            return Verdict("complete", text="".join(text), frames=frames)
        event = _json(data.encode(), "an SSE event's data")
        frames.append(event)
        if not isinstance(event, dict):
            raise Violation(f"an event that is not a JSON object: {event!r}")
        if "error" in event or kind == "error":
            if not last:
                raise Violation(f"an error event that is not the last one: {events[index:]!r}")
            return Verdict("error", error=error_message("openai", event), in_band=True)
        for choice in event.get("choices") or []:
            delta = choice.get("delta") or {}
            text.append(delta.get("content") or "")
            finished = finished or bool(choice.get("finish_reason"))
    raise Violation(
        f"silent truncation: the stream ended after {len(events)} events with neither "
        f"[DONE] nor an error (text so far {''.join(text)!r})"
    )


# ---- Anthropic's Messages ------------------------------------------------------------------


def _anthropic_whole(body: dict[str, Any]) -> Verdict:
    content = body.get("content")
    if body.get("type") != "message" or not isinstance(content, list):
        raise Violation(f"a whole Messages answer that is not a message: {body!r}")
    if not body.get("stop_reason"):
        raise Violation(f"a Message without stop_reason: {body!r}")
    text = "".join(
        block["text"]
        for block in content
        if isinstance(block, dict) and block.get("type") == "text"
    )
    return Verdict("complete", text=text, frames=[body])


def _named_events(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """Named SSE events whose data is a JSON object of the same ``type``."""
    if not reply.content_type.startswith("text/event-stream"):
        raise Violation(f"an SSE stream with content type {reply.content_type!r}")
    events = []
    for kind, data in sse_events(reply.body):
        event = _json(data.encode(), "an SSE event's data")
        if not isinstance(event, dict) or event.get("type") != kind:
            raise Violation(f"an event {kind!r} whose data is not of its type: {data[:300]!r}")
        events.append((kind, event))
    return events


def _anthropic_stream(reply: Reply) -> Verdict:
    events = _named_events(reply)
    text: list[str] = []
    started = False
    stopped = False  # a message_delta with a stop_reason came
    open_blocks: set[int] = set()
    for index, (kind, event) in enumerate(events):
        last = index == len(events) - 1
        if kind == "error":
            if not last:
                raise Violation(f"an error event that is not the last one: {events[index:]!r}")
            return Verdict("error", error=error_message("anthropic", event), in_band=True)
        if kind == "ping":
            continue
        if kind == "message_start":
            if started:
                raise Violation("a second message_start")
            started = True
            continue
        if not started:
            raise Violation(f"{kind} before message_start")
        if kind == "content_block_start":
            open_blocks.add(event["index"])
        elif kind == "content_block_delta":
            if event.get("index") not in open_blocks:
                raise Violation(f"a delta for a block that is not open: {event!r}")
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                text.append(delta["text"])
        elif kind == "content_block_stop":
            open_blocks.discard(event.get("index"))
        elif kind == "message_delta":
            stopped = bool((event.get("delta") or {}).get("stop_reason"))
        elif kind == "message_stop":
            if not last:
                raise Violation(f"events after message_stop: {events[index + 1 :]!r}")
            if not stopped or open_blocks:
                raise Violation("message_stop without a stop_reason, or with a block open")
            return Verdict("complete", text="".join(text), frames=[e for _, e in events])
        else:
            raise Violation(f"an event Messages does not define: {kind!r}")
    raise Violation(
        f"silent truncation: the stream ended after {len(events)} events with neither "
        f"message_stop nor an error (text so far {''.join(text)!r})"
    )


# ---- OpenAI's Responses --------------------------------------------------------------------

RESPONSE_ENDS = ("completed", "incomplete")


def _response_text(response: Any) -> str:
    """The text of a Response object's message items."""
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise Violation(f"not a Response object: {response!r}")
    return "".join(
        part["text"]
        for item in response["output"]
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )


def _responses_whole(body: dict[str, Any]) -> Verdict:
    if body.get("object") != "response" or body.get("status") not in RESPONSE_ENDS:
        raise Violation(f"a whole answer that is not a finished Response: {body!r}")
    return Verdict("complete", text=_response_text(body), frames=[body])


def _responses_stream(reply: Reply) -> Verdict:
    events = _named_events(reply)
    text: list[str] = []
    for index, (kind, event) in enumerate(events):
        last = index == len(events) - 1
        if event.get("sequence_number") != index:
            raise Violation(f"event {index} has sequence_number {event.get('sequence_number')!r}")
        if index == 0 and kind != "response.created":
            raise Violation(f"a stream that opens with {kind!r}, not response.created")
        if kind == "error":
            following = events[index + 1 :]
            if [k for k, _ in following] != ["response.failed"]:
                raise Violation(f"an error event not followed by response.failed: {following!r}")
            if not isinstance(event.get("message"), str):
                raise Violation(f"an error event without a message: {event!r}")
        elif kind == "response.failed":
            if not last:
                raise Violation(f"events after response.failed: {events[index + 1 :]!r}")
            response = event.get("response") or {}
            error = response.get("error")
            if response.get("status") != "failed" or not isinstance(error, dict):
                raise Violation(f"response.failed without a failed response: {event!r}")
            return Verdict("error", error=str(error.get("message") or ""), in_band=True)
        elif kind in (f"response.{end}" for end in RESPONSE_ENDS):
            if not last:
                raise Violation(f"events after {kind}: {events[index + 1 :]!r}")
            response = event.get("response")
            if _response_text(response) != "".join(text):
                raise Violation(f"{kind}'s output is not the text streamed: {response!r}")
            return Verdict("complete", text="".join(text), frames=[e for _, e in events])
        elif kind == "response.output_text.delta":
            text.append(event["delta"])
    raise Violation(
        f"silent truncation: the stream ended after {len(events)} events with neither "
        f"response.completed nor response.failed (text so far {''.join(text)!r})"
    )
