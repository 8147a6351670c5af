"""Cross-dialect relays: upstream lines → deltas → the client's dialect.

Upstream readers and client writers meet only at ``cortex.chat.Delta``, so a new
dialect is one reader and one writer, not a change to every pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..chat import Delta, ToolCall, Usage
from ..dialects.ollama import OllamaEncoder, OllamaParser
from ..dialects.openai_stream import OpenAIEncoder, OpenAIParser
from ..errors import CortexError, UpstreamIncomplete, UpstreamProtocolError, in_band
from .encode import SSE, Framing
from .passthrough import INCOMPLETE, NOT_JSON
from .sse import Event, SSEDecoder


@dataclass(slots=True)
class Step:
    delta: Delta | None = None
    final: bool = False
    error: str | None = None


class UpstreamReader(Protocol):
    """Reads an upstream's lines as steps; raises ``UpstreamProtocolError`` where one is bad."""

    reads_sse: bool

    def read(self, lines: list[bytes]) -> Iterator[Step]: ...

    def close(self) -> Iterator[Step]:
        """At the upstream's end: what is left, and a closing step if the answer finished
        without its end marker."""
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
    reads_sse = False

    def __init__(self) -> None:
        self._parser = OllamaParser()

    def read(self, lines: list[bytes]) -> Iterator[Step]:
        for line in lines:
            message = _json_object(line)
            if "error" in message:
                yield Step(error=str(message["error"]))
                return
            delta = self._parser.parse(message)
            yield Step(delta, final=delta.finish_reason is not None)

    def close(self) -> Iterator[Step]:
        return iter(())


class OpenAIReader:
    reads_sse = True

    def __init__(self) -> None:
        self._parser = OpenAIParser()
        self._events = SSEDecoder()
        self._done = False

    def read(self, lines: list[bytes]) -> Iterator[Step]:
        return self._steps(self._events.feed(lines))

    def close(self) -> Iterator[Step]:
        yield from self._steps(self._events.flush())
        if not self._done and self._parser.finished:
            yield Step(self._parser.finish(), final=True)

    def _steps(self, events: list[Event]) -> Iterator[Step]:
        for event in events:
            if event.data == b"[DONE]":
                self._done = True
                yield Step(self._parser.finish(), final=True)
                continue
            message = _json_object(event.data)
            error = message.get("error")
            if error is not None or event.name == b"error":
                text = error.get("message") if isinstance(error, dict) else error
                yield Step(error=str(text or "the model server reported an error"))
                return
            delta = self._parser.parse(message)
            if delta:
                yield Step(delta)


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
        self.reads_sse = reader.reads_sse
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
        return self._follow(self._reader.read(lines))

    def _follow(self, steps: Iterator[Step]) -> bytes:
        out: list[bytes] = []
        try:
            for step in steps:
                if self.complete:
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
        except UpstreamProtocolError as exc:
            self.failure = exc
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
        tail = self._follow(self._reader.close())
        if self.failure is not None:
            raise self.failure
        if not self.complete and not self.ended:
            raise UpstreamIncomplete(INCOMPLETE)
        return self._out if self._aggregate else tail

    def error(self, exc: CortexError) -> bytes:
        return self._writer.error(exc)
