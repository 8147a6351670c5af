"""Events written as Ollama's chat or generate objects, framed as NDJSON or server-sent events."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson

from ...chat import ToolCall
from ...errors import CortexError
from ...events import (
    Answer,
    Event,
    Failure,
    Finish,
    Reasoning,
    Text,
    ToolArguments,
    ToolEnd,
    ToolStart,
    arguments_object,
)
from ...stream.encode import Framing
from .request import wire_call

Shape = Literal["chat", "generate"]


def created_at() -> str:
    return Stamps().now()


class Stamps:
    """Ollama's ``created_at`` (RFC 3339, nanosecond digits, UTC).

    Formatting the date was a third of a translated stream's CPU (profiled), so
    the part down to the second is formatted once per second.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f"{self._prefix}{micro:06d}000Z"


class OllamaObjects:
    """Ollama's chat or generate objects, with truthful counts and timings.

    When the upstream reports no timings, they are measured here: total from the
    request, prompt evaluation until the first piece, evaluation after it.
    """

    def __init__(self, model: str, shape: Shape) -> None:
        self._model = model
        self._shape = shape
        self._started = time.monotonic_ns()
        self._stamps = Stamps()
        self._first_piece: int | None = None
        self._pieces = 0

    def piece(
        self, content: str = "", thinking: str = "", calls: list[tuple[int, ToolCall]] | None = None
    ) -> dict[str, Any]:
        if self._first_piece is None:
            self._first_piece = time.monotonic_ns()
        if content or thinking:
            self._pieces += 1
        out: dict[str, Any] = {"model": self._model, "created_at": self._stamps.now()}
        if self._shape == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = [wire_call(call, index) for index, call in calls]
            out["message"] = message
        else:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
        out["done"] = False
        return out

    def final(self, finish: Finish, whole: Answer | None = None) -> dict[str, Any]:
        """The closing object; ``whole`` carries the full answer for a non-streaming reply."""
        if whole is None:
            out = self.piece()
        else:
            calls = [
                (i, ToolCall(c.name, arguments_object(c.arguments), c.id))
                for i, c in sorted(whole.calls.items())
            ]
            out = self.piece(whole.content, whole.thinking, calls)
        del out["done"]
        now = time.monotonic_ns()
        first = self._first_piece or now
        usage = finish.usage
        durations = finish.durations or {
            "total_duration": now - self._started,
            "load_duration": 0,
            "prompt_eval_duration": first - self._started,
            "eval_duration": now - first,
        }
        metrics = {
            "total_duration": durations.get("total_duration", now - self._started),
            "load_duration": durations.get("load_duration", 0),
            "prompt_eval_count": usage.prompt_tokens or 0,
            "prompt_eval_duration": durations.get("prompt_eval_duration", 0),
            "eval_count": self._pieces
            if usage.completion_tokens is None
            else usage.completion_tokens,
            "eval_duration": durations.get("eval_duration", 0),
        }
        out.update(done_reason="length" if finish.reason == "length" else "stop", done=True)
        out.update((k, v) for k, v in metrics.items() if v)  # Ollama omits unknown (zero) metrics
        return out


class OllamaWriter:
    """A ``Writer``: each piece one object; a tool call one object once its arguments are whole."""

    def __init__(self, model: str, shape: Shape, framing: Framing) -> None:
        self._objects = OllamaObjects(model, shape)
        self._framing = framing
        self.heartbeat = framing.heartbeat
        self._calls: dict[int, tuple[str | None, str, list[str]]] = {}

    def write(self, events: list[Event]) -> bytes:
        objects = self._objects
        lines: list[bytes] = []
        for event in events:
            if type(event) is Text:  # a token, the usual event: written without a match
                token = objects.piece(event.text)
                if event.logprobs:
                    token["logprobs"] = list(event.logprobs)
                lines.append(orjson.dumps(token))
                continue
            match event:
                case Reasoning(text) if text:
                    lines.append(orjson.dumps(objects.piece(thinking=text)))
                case ToolStart(index, call_id, name):
                    self._calls[index] = (call_id, name, [])
                case ToolArguments(index, piece) if index in self._calls:
                    self._calls[index][2].append(piece)
                case ToolEnd(index) if index in self._calls:
                    call_id, name, pieces = self._calls.pop(index)
                    call = ToolCall(name, arguments_object("".join(pieces)), call_id)
                    lines.append(orjson.dumps(objects.piece(calls=[(index, call)])))
                case Finish():
                    lines.append(orjson.dumps(objects.final(event)))
                case Failure(message):
                    out = self._framing.lines(lines) if lines else b""
                    return out + self._framing.upstream_error(orjson.dumps({"error": message}))
        return self._framing.lines(lines) if lines else b""

    def whole(self, answer: Answer) -> bytes:
        final = self._objects.final(answer.finish or Finish("stop"), whole=answer)
        if answer.logprobs:
            final["logprobs"] = answer.logprobs
        return orjson.dumps(final)

    def error(self, exc: CortexError) -> bytes:
        return self._framing.error(exc)
