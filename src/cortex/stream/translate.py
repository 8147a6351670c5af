"""Cross-dialect relays: an upstream codec's reader joined to a client codec's writer.

They meet only at ``cortex.events``, so a new dialect is one reader and one
writer, not a change to every pair.
"""

from __future__ import annotations

from ..errors import CortexError, UpstreamIncomplete, UpstreamProtocolError
from ..events import Answer, Event, Failure, Finish, Reasoning, Text, Usage
from .contract import INCOMPLETE, Reader, Writer


class CrossDialect:
    """A ``Translator``: each batch of lines read into events and written for the client.

    With ``aggregate`` it sends nothing until the end, then one whole answer.
    """

    def __init__(self, reader: Reader, writer: Writer, *, aggregate: bool) -> None:
        self._reader = reader
        self._writer = writer
        self._aggregate = Answer() if aggregate else None
        self.reads_sse = reader.reads_sse
        self.heartbeat = None if aggregate else writer.heartbeat
        self.failure: CortexError | None = None
        self.ended = False
        self.complete = False
        self.usage = Usage()
        self.pieces = 0
        self.finish_reason: str | None = None
        self._whole = b""

    def feed(self, lines: list[bytes]) -> bytes:
        # One line, or a server-sent event's line and the blank one that ends it (the line
        # alone makes no event, so nothing comes before a failure): read at once.
        if len(lines) == 1 or (len(lines) == 2 and not lines[1]):
            try:
                return self._follow(self._reader.read(lines))
            except UpstreamProtocolError as exc:
                self.failure = exc
                return b""
        events: list[Event] = []
        try:
            for line in lines:  # one by one, so the lines before a bad one are relayed
                events += self._reader.read([line])
        except UpstreamProtocolError as exc:
            self.failure = exc
        return self._follow(events)

    def close(self) -> bytes:
        tail = b""
        try:
            tail = self._follow(self._reader.close())
        except UpstreamProtocolError as exc:
            self.failure = exc
        if self.failure is not None:
            raise self.failure
        if not self.complete and not self.ended:
            raise UpstreamIncomplete(INCOMPLETE)
        return self._whole if self._aggregate is not None else tail

    def error(self, exc: CortexError) -> bytes:
        return self._writer.error(exc)

    @property
    def response_model(self) -> str | None:
        """The model the upstream named in its answer (telemetry's gen_ai.response.model)."""
        return self._reader.model

    def _follow(self, events: list[Event]) -> bytes:
        if self.complete or self.ended:
            return b""
        kept = events
        out = b""
        for i, event in enumerate(events):
            kind = type(event)
            if kind is Text or kind is Reasoning:
                self.pieces += bool(event.text)  # type: ignore[union-attr]
            elif isinstance(event, Finish):
                self.complete = True
                self.usage = event.usage
                self.finish_reason = event.reason
                kept = events[: i + 1]
                break
            elif isinstance(event, Failure):
                failure = UpstreamProtocolError(event.message, status=502)
                self.ended = True
                kept = events[:i]
                if self._aggregate is not None:
                    self.failure = failure
                else:
                    out = self._writer.error(failure)
                break
        answer = self._aggregate
        if answer is None:
            return self._writer.write(kept) + out if kept else out
        for event in kept:
            answer.add(event)
        if self.complete:
            self._whole = self._writer.whole(answer)
        return b""
