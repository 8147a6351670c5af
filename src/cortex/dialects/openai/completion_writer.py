"""Events written as OpenAI's legacy text completions: ``text_completion`` chunks, or one
``text_completion`` object, for ``/v1/completions`` clients (code completion and
fill-in-the-middle in editors)."""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import CortexError, in_band
from ...events import Answer, Event, Failure, Finish, Text, Usage
from ...stream.encode import SSE
from .writer import DONE, Envelope, usage_object

KIND = "text_completion"


class CompletionWriter:
    heartbeat = SSE.heartbeat

    def __init__(self, model: str, include_usage: bool) -> None:
        self._envelope = Envelope("cmpl-", model, include_usage)
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
                    if self._envelope.include_usage:
                        out.append(self._envelope.event(KIND, [], self._usage(event.usage)))
                    out.append(DONE)
                case Failure(message):
                    out.append(in_band(CortexError(message, status=502), "openai-sse"))
                    break
        return b"".join(out)

    def whole(self, answer: Answer) -> bytes:
        finish = answer.finish or Finish("stop")
        self._pieces = answer.pieces
        completion = self._envelope.whole(KIND, [self._choice(answer.content, finish.reason)])
        completion["usage"] = self._usage(finish.usage)
        return orjson.dumps(completion)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")

    def _chunk(self, text: str, finish: str | None) -> bytes:
        return self._envelope.event(KIND, [self._choice(text, finish)])

    @staticmethod
    def _choice(text: str, finish: str | None) -> dict[str, Any]:
        reason = "length" if finish == "length" else finish and "stop"
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}

    def _usage(self, usage: Usage) -> dict[str, Any]:
        return usage_object(usage, self._pieces)
