"""Events written as OpenAI's legacy text completions: ``text_completion`` chunks, or one
``text_completion`` object, for ``/v1/completions`` clients (code completion and
fill-in-the-middle in editors)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from ...errors import CortexError, in_band
from ...events import Answer, Event, Failure, Finish, Text, Usage
from ...stream.encode import SSE
from .writer import DONE, usage_object


class CompletionWriter:
    heartbeat = SSE.heartbeat

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = "cmpl-" + secrets.token_hex(12)
        self._created = int(time.time())
        self._pieces = 0

    def write(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for event in events:
            match event:
                case Text(text):
                    self._pieces += 1
                    out.append(self._chunk(text, None))
                case Finish():
                    out.append(self._chunk("", event.reason))
                    if self._include_usage:
                        out.append(self._event([], self._usage(event.usage)))
                    out.append(DONE)
                case Failure(message):
                    out.append(in_band(CortexError(message, status=502), "openai-sse"))
                    break
        return b"".join(out)

    def whole(self, answer: Answer) -> bytes:
        finish = answer.finish or Finish("stop")
        self._pieces = answer.pieces
        completion = {
            "id": self._id,
            "object": "text_completion",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": [self._choice(answer.content, finish.reason)],
            "usage": self._usage(finish.usage),
        }
        return orjson.dumps(completion)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")

    def _chunk(self, text: str, finish: str | None) -> bytes:
        return self._event([self._choice(text, finish)], None)

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "text_completion",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    @staticmethod
    def _choice(text: str, finish: str | None) -> dict[str, Any]:
        reason = "length" if finish == "length" else finish and "stop"
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}

    def _usage(self, usage: Usage) -> dict[str, Any]:
        return usage_object(usage, self._pieces)
