"""Ollama's streamed chat or generate lines, read into events."""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import UpstreamProtocolError
from ...events import (
    Event,
    Failure,
    Finish,
    FinishReason,
    Reasoning,
    Text,
    ToolArguments,
    ToolEnd,
    ToolStart,
    Usage,
    model_name,
    token_count,
)
from ...stream.contract import NOT_JSON
from .request import tool_call

DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
UNEXPECTED_SHAPE = "the model server sent a message of an unexpected shape"


def json_object(line: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        parsed = None
    if type(parsed) is not dict:
        raise UpstreamProtocolError(NOT_JSON)
    return parsed


class OllamaReader:
    """Each line may carry reasoning, text and whole tool calls; the ``done`` line ends it."""

    reads_sse = False

    def __init__(self) -> None:
        self._calls = 0
        self.model: str | None = None

    def read(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        for line in lines:
            message = json_object(line)
            if "error" in message:
                events.append(Failure(str(message["error"])))
                break
            if self.model is None:
                self.model = model_name(message.get("model"))
            self._read(message, events)
        return events

    def close(self) -> list[Event]:
        return []

    def _read(self, line: dict[str, Any], events: list[Event]) -> None:
        message = line.get("message") or {}
        raw_calls = (message.get("tool_calls") or []) if isinstance(message, dict) else None
        if not isinstance(raw_calls, list):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        content = message.get("content") or line.get("response") or ""
        thinking = message.get("thinking") or line.get("thinking") or ""
        if not isinstance(content, str) or not isinstance(thinking, str):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        if thinking:
            events.append(Reasoning(thinking))
        if content:
            found = line.get("logprobs")
            events.append(Text(content, logprobs(found) if found else None))
        for raw in raw_calls:
            try:
                call = tool_call(raw)
            except ValueError:
                raise UpstreamProtocolError(UNEXPECTED_SHAPE) from None
            index, self._calls = self._calls, self._calls + 1
            events.append(ToolStart(index, call.id, call.name))
            events.append(ToolArguments(index, orjson.dumps(call.arguments).decode()))
            events.append(ToolEnd(index))
        if line.get("done") is True:
            usage = Usage(
                token_count(line.get("prompt_eval_count")), token_count(line.get("eval_count"))
            )
            durations = {k: line[k] for k in DURATIONS if isinstance(line.get(k), int)}
            events.append(Finish(self._reason(line.get("done_reason")), usage, durations))

    def _reason(self, done_reason: Any) -> FinishReason:
        if self._calls:
            return "tool_calls"
        return "length" if done_reason == "length" else "stop"


def logprobs(value: Any) -> tuple[dict[str, Any], ...] | None:
    """Log probabilities as the server gave them, if they are a list of entries."""
    if not isinstance(value, list) or not value:
        return None
    return tuple(entry for entry in value if isinstance(entry, dict)) or None
