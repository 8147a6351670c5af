"""Events written as Anthropic's Messages stream (named SSE events), or as one Message object.

A stream is ``message_start``; then content blocks, each a ``content_block_start``, its
deltas and a ``content_block_stop``, indexed across the answer; then ``message_delta``
(stop reason and usage) and ``message_stop``. A block ends where the kind of event
changes: reasoning to text, text to a tool call, one tool call to the next.

A tool call keeps the upstream's id unless the conversation already holds it (some servers
number calls from zero in every answer) or the upstream sent none: then a fresh ``toolu_``
id. Clients key the calls and their results by id, and Claude Code drops repeats.

``message_start`` goes out before the upstream has counted the prompt, so its
``input_tokens`` is the hint given (an estimate) or 0; the count reported at the end is
repeated in ``message_delta``'s usage, as Anthropic does. Anthropic's ``input_tokens``
excludes tokens read from the prompt cache, which go in ``cache_read_input_tokens``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any, Literal

import orjson

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
    Usage,
    arguments_object,
)
from .errors import error_event, in_band

PING = b'event: ping\ndata: {"type": "ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
TEXT_BLOCK: dict[str, Any] = {"type": "text", "text": ""}
THINKING_BLOCK: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
Block = Literal["text", "thinking", "tool"]


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def tool_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _delta(index: int, delta: dict[str, str]) -> bytes:
    data = {"type": "content_block_delta", "index": index, "delta": delta}
    return _event(b"content_block_delta", data)


def stop_reason(finish: Finish | None, called: bool) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` for how an answer ended."""
    if finish is None:
        return ("tool_use" if called else "end_turn"), None
    if finish.reason == "length":
        return "max_tokens", None
    if finish.reason == "tool_calls" or called:
        return "tool_use", None
    if finish.stop_sequence is not None:
        return "stop_sequence", finish.stop_sequence
    return "end_turn", None


def usage(reported: Usage, hint: int | None, pieces: int) -> dict[str, int]:
    """Anthropic's usage from the counts reported (the hint and pieces where none were)."""
    prompt = reported.prompt_tokens if reported.prompt_tokens is not None else hint or 0
    cached = reported.cached_tokens
    out = {"input_tokens": max(0, prompt - (cached or 0))}
    if cached is not None:
        out["cache_read_input_tokens"] = cached
    completion = reported.completion_tokens
    out["output_tokens"] = completion if completion is not None else pieces
    return out


class MessagesWriter:
    heartbeat: bytes | None = PING

    def __init__(
        self,
        model: str,
        *,
        input_tokens_hint: int | None = None,
        message_id: str | None = None,
        taken_ids: Iterable[str] = (),
    ) -> None:
        self._model = model
        self._taken = set(taken_ids)
        self._hint = input_tokens_hint
        self._id = message_id or new_message_id()
        self._started = False
        self._index = -1  # the open (or last) block's index
        self._open: Block | None = None
        self._tool = -1  # the open tool call's index among the calls
        self._called = False
        self._pieces = 0

    def write(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(self._message_start())
        for event in events:
            if type(event) is Text and event.text:  # a token, the usual event: no match
                self._pieces += 1
                out += self._enter("text", TEXT_BLOCK)
                out.append(_delta(self._index, {"type": "text_delta", "text": event.text}))
                continue
            match event:
                case Reasoning(text, signature) if text or signature:
                    self._pieces += bool(text)
                    out += self._enter("thinking", THINKING_BLOCK)
                    if text:
                        out.append(
                            _delta(self._index, {"type": "thinking_delta", "thinking": text})
                        )
                    if signature:
                        delta = {"type": "signature_delta", "signature": signature}
                        out.append(_delta(self._index, delta))
                case ToolStart(index, call_id, name):
                    self._called = True
                    call = {"type": "tool_use", "id": self._call_id(call_id), "name": name}
                    out += self._enter("tool", {**call, "input": {}})
                    self._tool = index
                case ToolArguments(index, piece) if piece and self._is_open_tool(index):
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    out.append(_delta(self._index, delta))
                case ToolEnd(index) if self._is_open_tool(index):
                    out += self._close()
                case Finish():
                    out += self._close()
                    out.append(self._message_delta(event))
                    out.append(MESSAGE_STOP)
                case Failure(message):
                    out.append(error_event(message))
                case _:
                    pass
        return b"".join(out)

    def _call_id(self, upstream: str | None) -> str:
        call_id = upstream if upstream and upstream not in self._taken else tool_id()
        self._taken.add(call_id)
        return call_id

    def _is_open_tool(self, index: int) -> bool:
        return self._open == "tool" and self._tool == index

    def _enter(self, kind: Block, block: dict[str, Any]) -> list[bytes]:
        """Open a block of this kind unless one is open: what to write first."""
        if self._open == kind and kind != "tool":
            return []
        out = self._close()
        self._open = kind
        self._index += 1
        data = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [*out, _event(b"content_block_start", data)]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        data = {"type": "content_block_stop", "index": self._index}
        return [_event(b"content_block_stop", data)]

    def _message_start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._hint or 0, "output_tokens": 0},
        }
        return _event(b"message_start", {"type": "message_start", "message": message})

    def _message_delta(self, finish: Finish) -> bytes:
        reason, sequence = stop_reason(finish, self._called)
        data = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage(finish.usage, self._hint, self._pieces),
        }
        return _event(b"message_delta", data)

    def whole(self, answer: Answer) -> bytes:
        content: list[dict[str, Any]] = []
        if answer.reasoning or answer.signature:
            thinking = {"type": "thinking", "thinking": answer.thinking}
            content.append({**thinking, "signature": answer.signature})
        if answer.content:
            content.append({"type": "text", "text": answer.content})
        for _, call in sorted(answer.calls.items()):
            block = {"type": "tool_use", "id": self._call_id(call.id), "name": call.name}
            content.append({**block, "input": arguments_object(call.arguments)})
        reason, sequence = stop_reason(answer.finish, bool(answer.calls))
        reported = answer.finish.usage if answer.finish is not None else Usage()
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": usage(reported, self._hint, answer.pieces),
        }
        return orjson.dumps(message)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc)
