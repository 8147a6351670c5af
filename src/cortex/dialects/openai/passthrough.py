"""OpenAI clients in front of an OpenAI-compatible server: its events go to the client as
they are, each checked to be JSON and read for how the answer ends."""

from __future__ import annotations

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

    def _unfinished(self) -> bytes:
        if self.finish_reason is not None:
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
            piece, finish = _read_choices(message.get("choices"))
            if self.finish_reason is None:  # the first one given is the answer's
                self.finish_reason = finish
            usage = message.get("usage")
            if isinstance(usage, dict):
                self.usage = usage_of(usage)
            elif piece:
                self.pieces += 1
        return b"".join(out)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")


def _read_choices(choices: object) -> tuple[bool, str | None]:
    """Whether an event's choices carry part of the answer (not just a role, a finish
    reason or usage), and the first finish reason they give."""
    piece, finish = False, None
    if not isinstance(choices, list):
        return piece, finish
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if finish is None and choice.get("finish_reason"):
            finish = str(choice["finish_reason"])
        if not piece:
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content") or delta.get("reasoning_content")
                piece = bool(content or delta.get("tool_calls"))
            piece = piece or bool(choice.get("text"))
    return piece, finish
