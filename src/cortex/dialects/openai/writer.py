"""Events written as OpenAI's ``chat.completion.chunk`` events, or one ``chat.completion``."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from ...errors import CortexError, in_band
from ...events import (
    Answer,
    Event,
    Failure,
    Finish,
    Reasoning,
    Text,
    ToolArguments,
    ToolStart,
    Usage,
)
from ...stream.encode import SSE

DONE = b"data: [DONE]\n\n"
CHUNK = "chat.completion.chunk"


class Envelope:
    """What every object of one OpenAI answer repeats (its id, time, model), and the server-
    sent event around a streamed chunk; ``usage`` rides on every chunk when it was asked for."""

    def __init__(self, prefix: str, model: str, include_usage: bool) -> None:
        self.id = prefix + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self._heads: dict[str, bytes] = {}  # each kind's encoded start of a streamed chunk

    def whole(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def event(
        self, kind: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
    ) -> bytes:
        """A streamed chunk as a server-sent event: the same bytes as ``whole(kind, choices)``
        (with its ``usage`` when asked for) encoded, with what repeats encoded once."""
        head = self._heads.get(kind)
        if head is None:  # everything before the choices, without the closing brace
            head = orjson.dumps({**self.whole(kind, []), "choices": None})[: -len(b"null}")]
            head = self._heads[kind] = b"data: " + head
        if self.include_usage:
            tail = b',"usage":' + orjson.dumps(usage) + b"}\n\n"
            return b"".join((head, orjson.dumps(choices), tail))
        return b"".join((head, orjson.dumps(choices), b"}\n\n"))


class OpenAIWriter:
    heartbeat = SSE.heartbeat

    def __init__(self, model: str, include_usage: bool) -> None:
        self._envelope = Envelope("chatcmpl-", model, include_usage)
        self._sent_role = False
        self._pieces = 0

    def write(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        if not self._sent_role:
            self._sent_role = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        for event in events:
            if type(event) is Text:  # a token, the usual event: written without a match
                self._pieces += 1
                out.append(self._chunk({"content": event.text}, logprobs=event.logprobs))
                continue
            match event:
                case Reasoning(text) if text:
                    self._pieces += 1
                    out.append(self._chunk({"content": "", "reasoning_content": text}))
                case ToolStart(index, call_id, name):
                    call = {
                        "index": index,
                        "id": call_id or _call_id(),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                    out.append(self._chunk({"tool_calls": [call]}))
                case ToolArguments(index, piece):
                    call = {"index": index, "function": {"arguments": piece}}
                    out.append(self._chunk({"tool_calls": [call]}))
                case Finish():
                    out.append(self._final(event))
                case Failure(message):
                    out.append(in_band(CortexError(message, status=502), "openai-sse"))
                    break
        return b"".join(out)

    def whole(self, answer: Answer) -> bytes:
        finish = answer.finish or Finish("stop")
        content = answer.content
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if answer.thinking:
            message["reasoning_content"] = answer.thinking
        if answer.calls:
            message["tool_calls"] = [
                {
                    "id": call.id or _call_id(),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for _, call in sorted(answer.calls.items())
            ]
            message["content"] = content or None
        self._pieces = answer.pieces or int(bool(content))
        choice = {
            "index": 0,
            "message": message,
            "logprobs": {"content": answer.logprobs} if answer.logprobs else None,
            "finish_reason": finish.reason,
        }
        completion = self._envelope.whole("chat.completion", [choice])
        completion["usage"] = self._usage(finish.usage)
        return orjson.dumps(completion)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")

    def _chunk(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: tuple[dict[str, Any], ...] | None = None,
    ) -> bytes:
        probabilities = {"content": list(logprobs)} if logprobs else None
        choice = {"index": 0, "delta": delta, "logprobs": probabilities, "finish_reason": finish}
        return self._envelope.event(CHUNK, [choice])

    def _final(self, finish: Finish) -> bytes:
        out = self._chunk({}, finish.reason)
        if self._envelope.include_usage:
            out += self._envelope.event(CHUNK, [], self._usage(finish.usage))
        return out + DONE

    def _usage(self, usage: Usage) -> dict[str, Any]:
        return usage_object(usage, self._pieces)


def usage_object(usage: Usage, pieces: int) -> dict[str, Any]:
    """OpenAI's ``usage``: the server's counts, else the pieces streamed as completion tokens."""
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens if usage.completion_tokens is not None else pieces
    reported: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage.cached_tokens is not None:
        reported["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        reported["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return reported


def _call_id() -> str:
    return f"call_{secrets.token_hex(8)}"
