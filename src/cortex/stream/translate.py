"""Cross-dialect relays: upstream lines → deltas → the client's dialect.

Upstream readers and client writers meet only at ``cortex.chat.Delta``, so a new
dialect is one reader and one writer, not a change to every pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..chat import Delta, ToolCall, Usage
from ..dialects.ollama import OllamaEncoder, OllamaParser
from ..dialects.openai import OpenAIEncoder, OpenAIParser
from ..errors import CortexError, UpstreamIncomplete, UpstreamProtocolError, in_band
from .encode import SSE, Framing
from .passthrough import INCOMPLETE, NOT_JSON


@dataclass(slots=True)
class Step:
    delta: Delta | None = None
    final: bool = False
    error: str | None = None


class UpstreamReader(Protocol):
    def read(self, line: bytes) -> Step | None: ...

    def close(self) -> Delta | None:
        """At the upstream's end: the closing delta if the answer finished without a marker."""
        ...


class ClientWriter(Protocol):
    heartbeat: bytes | None

    def piece(self, delta: Delta) -> bytes: ...

    def final(self, last: Delta) -> bytes: ...

    def whole(self, content: str, thinking: str, last: Delta) -> bytes: ...

    def error(self, exc: CortexError) -> bytes: ...


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if type(parsed) is not dict:
        raise UpstreamProtocolError(NOT_JSON)
    return parsed


class OllamaReader:
    def __init__(self) -> None:
        self._parser = OllamaParser()

    def read(self, line: bytes) -> Step:
        message = _json_object(line)
        if "error" in message:
            return Step(error=str(message["error"]))
        delta = self._parser.parse(message)
        return Step(delta, final=delta.finish_reason is not None)

    def close(self) -> Delta | None:
        return None


class OpenAIReader:
    def __init__(self) -> None:
        self._parser = OpenAIParser()
        self._error_event = False

    def read(self, line: bytes) -> Step | None:
        if line.startswith(b"event:"):
            self._error_event = line[6:].strip() == b"error"
            return None
        if not line.startswith(b"data:"):
            return None
        data = line[5:].strip()
        if data == b"[DONE]":
            return Step(self._parser.finish(), final=True)
        event = _json_object(data)
        error = event.get("error")
        if error is not None or self._error_event:
            message = error.get("message") if isinstance(error, dict) else error
            return Step(error=str(message or "the model server reported an error"))
        delta = self._parser.parse(event)
        return Step(delta) if delta else None

    def close(self) -> Delta | None:
        return self._parser.finish() if self._parser.finished else None


class OllamaWriter:
    def __init__(self, model: str, shape: str, framing: Framing) -> None:
        self._encoder = OllamaEncoder(model, "chat" if shape == "chat" else "generate")
        self._framing = framing
        self.heartbeat = framing.heartbeat

    def piece(self, delta: Delta) -> bytes:
        return self._framing.lines([orjson.dumps(self._encoder.piece(delta))])

    def final(self, last: Delta) -> bytes:
        lead = Delta(content=last.content, thinking=last.thinking, tool_calls=last.tool_calls)
        out = self.piece(lead) if lead.content or lead.thinking or lead.tool_calls else b""
        return out + self._framing.lines([orjson.dumps(self._encoder.final(last))])

    def whole(self, content: str, thinking: str, last: Delta) -> bytes:
        answer = Delta(content=content, thinking=thinking, tool_calls=last.tool_calls)
        return orjson.dumps(self._encoder.final(last, whole=answer))

    def error(self, exc: CortexError) -> bytes:
        return self._framing.error(exc)


class OpenAIWriter:
    heartbeat = SSE.heartbeat

    def __init__(self, model: str, include_usage: bool) -> None:
        self._encoder = OpenAIEncoder(model, include_usage)

    def piece(self, delta: Delta) -> bytes:
        return self._encoder.piece(delta)

    def final(self, last: Delta) -> bytes:
        return self._encoder.final(last)

    def whole(self, content: str, thinking: str, last: Delta) -> bytes:
        return self._encoder.whole(content, thinking, last)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")


class Translate:
    """A relay translator (see ``relay.Translator``) joining a reader and a writer.

    With ``aggregate`` it sends nothing until the end, then one whole answer.
    """

    def __init__(self, reader: UpstreamReader, writer: ClientWriter, *, aggregate: bool) -> None:
        self._reader = reader
        self._writer = writer
        self._aggregate = aggregate
        self.heartbeat = None if aggregate else writer.heartbeat
        self.failure: CortexError | None = None
        self.ended = False
        self.complete = False
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[ToolCall] = []
        self._out = b""
        self.usage = Usage()
        self.pieces = 0

    def feed(self, lines: list[bytes]) -> bytes:
        out: list[bytes] = []
        for line in lines:
            try:
                step = self._reader.read(line)
            except UpstreamProtocolError as exc:
                self.failure = exc
                break
            if step is None or self.complete:
                continue
            if step.error is not None:
                failure = UpstreamProtocolError(step.error, status=502)
                out.append(self._writer.error(failure))
                self.ended = True
                if self._aggregate:
                    self.failure = failure
                break
            if step.delta is not None:
                out.append(self._take(step.delta, step.final))
        return b"".join(out) if not self._aggregate else b""

    def _take(self, delta: Delta, final: bool) -> bytes:
        if delta.content or delta.thinking:
            self.pieces += 1
        if final:
            self.complete = True
            self.usage = delta.usage or self.usage
        if self._aggregate:
            self._content.append(delta.content)
            self._thinking.append(delta.thinking)
            self._calls += delta.tool_calls
            if final:
                last = Delta(
                    tool_calls=self._calls,
                    finish_reason=delta.finish_reason,
                    usage=delta.usage,
                    durations=delta.durations,
                )
                self._out = self._writer.whole(
                    "".join(self._content), "".join(self._thinking), last
                )
            return b""
        return self._writer.final(delta) if final else self._writer.piece(delta)

    def close(self) -> bytes:
        if not self.complete:
            last = self._reader.close()
            if last is None:
                raise UpstreamIncomplete(INCOMPLETE)
            tail = self._take(last, final=True)
            return self._out if self._aggregate else tail
        return self._out

    def error(self, exc: CortexError) -> bytes:
        return self._writer.error(exc)
