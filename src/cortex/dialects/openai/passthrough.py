"""OpenAI clients in front of an OpenAI-compatible server: its events go to the client as
they are, each checked to be JSON and read for how the answer ends."""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import CortexError, UpstreamProtocolError, in_band
from ...events import model_name
from ...stream.contract import NOT_JSON
from ...stream.encode import SSE
from ...stream.sse import Event
from ..sse_passthrough import SSEPassthrough
from .reader import usage_of

DONE = b"data: [DONE]\n\n"


class OpenAIPassthrough(SSEPassthrough):
    """OpenAI server-sent events, forwarded event by event."""

    heartbeat = SSE.heartbeat

    def __init__(self) -> None:
        super().__init__()
        self._finished = False

    def _unfinished(self) -> bytes:
        if self._finished:
            return DONE  # some servers omit the sentinel after a finished answer
        return super()._unfinished()

    def _forward(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if event.data == b"[DONE]":
                self.complete = True
                out.append(DONE)
                continue
            try:
                message = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                message = None
            if type(message) is not dict:
                self.failure = UpstreamProtocolError(NOT_JSON)
                break
            out.append(event.encode())
            if "error" in message or event.name == b"error":
                self.ended = True
                break
            if self.response_model is None:
                self.response_model = model_name(message.get("model"))
            if not self._finished:
                self.finish_reason = _finish_reason(message)
                self._finished = self.finish_reason is not None
            self._count(message)
        return b"".join(out)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")

    def _count(self, event: dict[str, Any]) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = usage_of(usage)
        elif _has_piece(event):
            self.pieces += 1


def _has_piece(event: dict[str, Any]) -> bool:
    """The event carries part of the answer (not just a role, a finish reason or usage)."""
    for choice in event.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and (
            delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls")
        ):
            return True
        if choice.get("text"):
            return True
    return False


def _finish_reason(event: dict[str, object]) -> str | None:
    choices = event.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                return str(choice["finish_reason"])
    return None
