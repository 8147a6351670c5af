"""Same-dialect relays: the upstream's bytes go to the client untouched.

Each line is parsed only to check it is JSON and to see how the answer ends;
nothing is re-encoded, so this is the fast path.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from ..chat import Usage
from ..errors import CortexError, UpstreamIncomplete, UpstreamProtocolError, in_band
from .encode import SSE, Framing
from .sse import Event, SSEDecoder

Outcome = Literal["more", "done", "error", "invalid"]
INCOMPLETE = "the model server closed the stream before the answer was complete"
NOT_JSON = "the model server sent a line that is not a JSON object"
DONE = b"data: [DONE]\n\n"


class OllamaPassthrough:
    """Ollama NDJSON lines, framed as NDJSON or as server-sent events."""

    reads_sse = False

    def __init__(self, framing: Framing) -> None:
        self._framing = framing
        self.heartbeat = framing.heartbeat
        self.failure: CortexError | None = None
        self.ended = False
        self.complete = False
        self.usage = Usage()
        self.pieces = 0

    def feed(self, lines: list[bytes]) -> bytes:
        good, outcome, done = _check_ollama(lines)
        self.pieces += good - (done is not None)
        if done is not None:
            self.usage = Usage(done.get("prompt_eval_count"), done.get("eval_count"))
        out = self._framing.lines(lines if good == len(lines) else lines[:good]) if good else b""
        if outcome == "error":
            out += self._framing.upstream_error(lines[good])
            self.ended = True
        elif outcome == "invalid":
            self.failure = UpstreamProtocolError(NOT_JSON)
        elif outcome == "done":
            self.complete = True
        return out

    def close(self) -> bytes:
        if not self.complete:
            raise UpstreamIncomplete(INCOMPLETE)
        return b""

    def error(self, exc: CortexError) -> bytes:
        return self._framing.error(exc)


def _check_ollama(lines: list[bytes]) -> tuple[int, Outcome, dict[str, Any] | None]:
    """How many leading lines may be forwarded, what ended the batch, and its final line.

    ``"error"`` and ``"invalid"`` refer to the line just after the good ones:
    an upstream error line, or one that is not a JSON object.
    """
    outcome: Outcome = "more"
    done = None
    for index, line in enumerate(lines):
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return index, "invalid", done
        if type(message) is not dict:
            return index, "invalid", done
        if "error" in message:
            return index, "error", done
        if message.get("done") is True:
            outcome, done = "done", message
    return len(lines), outcome, done


class OpenAIPassthrough:
    """OpenAI server-sent events, forwarded event by event."""

    heartbeat = SSE.heartbeat
    reads_sse = True

    def __init__(self) -> None:
        self.failure: CortexError | None = None
        self.ended = False
        self.complete = False
        self.usage = Usage()
        self.pieces = 0
        self._finished = False
        self._events = SSEDecoder()

    def feed(self, lines: list[bytes]) -> bytes:
        return self._forward(self._events.feed(lines))

    def close(self) -> bytes:
        tail = self._forward(self._events.flush())
        if self.failure is not None:
            raise self.failure
        if self.complete or self.ended:
            return tail
        if self._finished:
            return tail + DONE  # some servers omit the sentinel after a finished answer
        raise UpstreamIncomplete(INCOMPLETE)

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
            self._finished = self._finished or _has_finish_reason(message)
            self._count(message)
        return b"".join(out)

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, "openai-sse")

    def _count(self, event: dict[str, Any]) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
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


def _has_finish_reason(event: dict[str, object]) -> bool:
    choices = event.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )
