"""An upstream's Messages stream (Anthropic's, or Ollama's, llama-server's or vLLM's
``/v1/messages``) read into ``cortex.events``.

Tool calls are numbered among the answer's calls, not its blocks. The ``Finish`` waits
for ``message_stop``: ``message_delta`` may come more than once, and an answer cut off
after it is still incomplete. Unknown events, blocks and deltas are skipped, as
Anthropic's versioning policy asks of clients.
"""

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
from ...stream.sse import SSEDecoder

NOT_JSON = "the model server sent an event that is not a JSON object"
UNEXPECTED_SHAPE = "the model server sent an event of an unexpected shape"
FINISH_REASONS: dict[str, FinishReason] = {
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
}


def json_event(data: bytes) -> dict[str, Any]:
    """An event's data as a JSON object with a ``type``, or ``UpstreamProtocolError``."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(NOT_JSON) from None
    if type(parsed) is not dict:
        raise UpstreamProtocolError(NOT_JSON)
    if not isinstance(parsed.get("type"), str):
        raise UpstreamProtocolError(UNEXPECTED_SHAPE)
    return parsed


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise UpstreamProtocolError(UNEXPECTED_SHAPE)
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise UpstreamProtocolError(UNEXPECTED_SHAPE)
    return value


def count_usage(usage: dict[str, Any], counts: Usage) -> None:
    """Add the counts an event reported; the prompt is Anthropic's uncached and cached parts."""
    parts = [
        token_count(usage.get(key))
        for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    ]
    if parts[0] is not None:
        counts.prompt_tokens = sum(part or 0 for part in parts)
        counts.cached_tokens = parts[1]
    output = token_count(usage.get("output_tokens"))
    if output is not None:
        counts.completion_tokens = output


def error_message(event: dict[str, Any]) -> str:
    error = event.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    return str(message or "the model server reported an error")


class MessagesReader:
    reads_sse = True

    def __init__(self) -> None:
        self._events = SSEDecoder()
        self._blocks: dict[int, int | None] = {}  # block index -> tool index (None: not a tool)
        self._tools = 0
        self._reason: FinishReason = "stop"
        self._stop_sequence: str | None = None
        self._usage = Usage()
        self._done = False
        self.model: str | None = None

    def read(self, lines: list[bytes]) -> list[Event]:
        out: list[Event] = []
        for sse in self._events.feed(lines):
            if self._done:
                break
            event = json_event(sse.data)
            if sse.name == b"error" or event["type"] == "error":
                self._done = True
                out.append(Failure(error_message(event)))
            else:
                out += self._read(event)
        return out

    def close(self) -> list[Event]:
        return self.read([b""])

    def _read(self, event: dict[str, Any]) -> list[Event]:
        kind = event["type"]
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._start(event)
        if kind == "content_block_stop":
            tool = self._blocks.get(self._block_index(event))
            return [] if tool is None else [ToolEnd(tool)]
        if kind == "message_start":
            message = _object(event.get("message"))
            count_usage(_object(message.get("usage", {})), self._usage)
            self.model = model_name(message.get("model"))
        elif kind == "message_delta":
            self._finish(event)
        elif kind == "message_stop":
            self._done = True
            return [Finish(self._reason, self._usage, stop_sequence=self._stop_sequence)]
        return []

    def _block_index(self, event: dict[str, Any]) -> int:
        index = event.get("index")
        if type(index) is not int:
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        return index

    def _start(self, event: dict[str, Any]) -> list[Event]:
        index = self._block_index(event)
        block = _object(event.get("content_block"))
        kind = block.get("type")
        self._blocks[index] = None
        if kind == "text" and block.get("text"):
            return [Text(_text(block["text"]))]
        if kind == "thinking" and (block.get("thinking") or block.get("signature")):
            return [Reasoning(_text(block.get("thinking", "")), _text(block.get("signature", "")))]
        if kind != "tool_use":
            return []
        call_id, name = block.get("id"), _text(block.get("name"))
        tool = self._blocks[index] = self._tools
        self._tools += 1
        start: list[Event] = [ToolStart(tool, call_id if isinstance(call_id, str) else None, name)]
        arguments = block.get("input")
        if isinstance(arguments, dict) and arguments:
            start.append(ToolArguments(tool, orjson.dumps(arguments).decode()))
        return start

    def _delta(self, event: dict[str, Any]) -> list[Event]:
        index = self._block_index(event)
        delta = _object(event.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            text = _text(delta.get("text"))
            return [Text(text)] if text else []
        if kind == "thinking_delta":
            thinking = _text(delta.get("thinking"))
            return [Reasoning(thinking)] if thinking else []
        if kind == "signature_delta":
            return [Reasoning("", _text(delta.get("signature")))]
        if kind == "input_json_delta":
            piece = _text(delta.get("partial_json"))
            tool = self._blocks.get(index)
            return [ToolArguments(tool, piece)] if piece and tool is not None else []
        return []

    def _finish(self, event: dict[str, Any]) -> None:
        delta = _object(event.get("delta", {}))
        reason = delta.get("stop_reason")
        if isinstance(reason, str):
            self._reason = FINISH_REASONS.get(reason, "stop")
        sequence = delta.get("stop_sequence")
        self._stop_sequence = sequence if isinstance(sequence, str) else None
        count_usage(_object(event.get("usage") or {}), self._usage)
