"""Ollama clients in front of Ollama: the upstream's lines go to the client untouched.

Each line is parsed only to check it is JSON and to see how the answer ends;
nothing is re-encoded, so this is the fast path.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from ...errors import CortexError, UpstreamIncomplete, UpstreamProtocolError
from ...events import Usage, model_name, token_count
from ...stream.contract import INCOMPLETE, NOT_JSON
from ...stream.encode import Framing

Check = Literal["more", "done", "error", "invalid"]


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
        self.finish_reason: str | None = None  # Ollama's done_reason
        self.response_model: str | None = None  # the model the server named, on its last line

    def feed(self, lines: list[bytes]) -> bytes:
        if len(lines) == 1:  # a token, the usual batch: an ordinary line goes on at once
            try:
                message = orjson.loads(lines[0])
            except orjson.JSONDecodeError:
                message = None
            if type(message) is dict and "error" not in message and message.get("done") is not True:
                self.pieces += 1
                return self._framing.lines(lines)
        good, outcome, done = _check_ollama(lines)
        self.pieces += good - (done is not None)
        if done is not None:
            self.usage = Usage(
                token_count(done.get("prompt_eval_count")), token_count(done.get("eval_count"))
            )
            reason = done.get("done_reason")
            self.finish_reason = reason if isinstance(reason, str) else None
            self.response_model = model_name(done.get("model"))
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


def _check_ollama(lines: list[bytes]) -> tuple[int, Check, dict[str, Any] | None]:
    """How many leading lines may be forwarded, what ended the batch, and its final line.

    ``"error"`` and ``"invalid"`` refer to the line just after the good ones:
    an upstream error line, or one that is not a JSON object.
    """
    outcome: Check = "more"
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
