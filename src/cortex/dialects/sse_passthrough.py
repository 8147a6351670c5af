"""A same-dialect passthrough of server-sent events: each event checked, then forwarded as
it came (OpenAI's chat completions, Anthropic's Messages).

A dialect's subclass says what an event means (``_forward``: its answer's end, an error
the upstream reported, usage, pieces) and how its in-band error looks (``error``).
"""

from __future__ import annotations

from ..errors import CortexError, UpstreamIncomplete
from ..events import Usage
from ..stream.contract import INCOMPLETE
from ..stream.sse import Event, SSEDecoder


class SSEPassthrough:
    reads_sse = True
    heartbeat: bytes | None = None

    def __init__(self) -> None:
        self.failure: CortexError | None = None
        self.ended = False
        self.complete = False
        self.usage = Usage()
        self.pieces = 0
        self.finish_reason: str | None = None  # why the answer ended, as the upstream said
        self.response_model: str | None = None  # the model that answered, as it said
        self._events = SSEDecoder()

    def feed(self, lines: list[bytes]) -> bytes:
        return self._forward(self._events.feed(lines))

    def close(self) -> bytes:
        tail = self._forward(self._events.flush())
        if self.failure is not None:
            raise self.failure
        if self.complete or self.ended:
            return tail
        return tail + self._unfinished()

    def error(self, exc: CortexError) -> bytes:
        raise NotImplementedError

    def _forward(self, events: list[Event]) -> bytes:
        raise NotImplementedError

    def _unfinished(self) -> bytes:
        """At the upstream's end without the answer's end: what to add, if the answer is
        whole all the same; else ``UpstreamIncomplete``."""
        raise UpstreamIncomplete(INCOMPLETE)
