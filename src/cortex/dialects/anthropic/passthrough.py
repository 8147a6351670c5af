"""A Messages upstream for a Messages client: each event forwarded as it came, checked on the way.

Each event's data is parsed only to check it is a JSON object with a ``type`` and to
see the usage, the answer's pieces, and how it ends: ``message_stop`` completes it, an
``error`` event ends it (forwarded as the upstream wrote it).
"""

from __future__ import annotations

from typing import Any

from ...errors import CortexError, UpstreamProtocolError
from ...events import model_name
from ...stream.sse import Event
from ..sse_passthrough import SSEPassthrough
from .errors import in_band
from .reader import count_usage, json_event
from .writer import PING

PIECES = frozenset({"text_delta", "thinking_delta"})


class MessagesPassthrough(SSEPassthrough):
    heartbeat: bytes | None = PING

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc)

    def _forward(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self.complete or self.ended or self.failure is not None:
                break
            try:
                message = json_event(event.data)
            except UpstreamProtocolError as exc:
                self.failure = exc
                break
            out.append(event.encode())
            kind = message["type"]
            if kind == "error" or event.name == b"error":
                self.ended = True
            elif kind == "message_stop":
                self.complete = True
            elif kind == "content_block_delta":
                self.pieces += _is_piece(message.get("delta"))
            elif kind == "message_start":
                message_ = message.get("message")
                self._count(message_.get("usage") if isinstance(message_, dict) else None)
                if isinstance(message_, dict):
                    self.response_model = model_name(message_.get("model"))
            elif kind == "message_delta":
                self._count(message.get("usage"))
                delta = message.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                    self.finish_reason = delta["stop_reason"]
        return b"".join(out)

    def _count(self, usage: Any) -> None:
        if isinstance(usage, dict):
            count_usage(usage, self.usage)


def _is_piece(delta: Any) -> bool:
    return (
        isinstance(delta, dict)
        and delta.get("type") in PIECES
        and bool(delta.get("text") or delta.get("thinking"))
    )
