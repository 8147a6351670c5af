"""What the relay core drives: a ``Translator``; and the two halves of a codec that make one.

A dialect's ``Reader`` turns an upstream's lines into ``cortex.events`` and its
``Writer`` turns those events into a client's bytes in the dialect's framing;
``translate.CrossDialect`` joins any reader to any writer. A same-dialect passthrough
is a ``Translator`` of its own that checks each line and forwards its bytes.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import CortexError
from ..events import Answer, Event, Usage

INCOMPLETE = "the model server closed the stream before the answer was complete"
NOT_JSON = "the model server sent a line that is not a JSON object"


class Reader(Protocol):
    """An upstream's stream, read into events; raises ``UpstreamProtocolError`` on a bad line."""

    reads_sse: bool  # the upstream sends server-sent events: blank lines end them
    model: str | None  # the model the upstream named in its answer, once it did

    def read(self, lines: list[bytes]) -> list[Event]: ...

    def close(self) -> list[Event]:
        """At the upstream's end: what is left, and the ``Finish`` of an answer that
        finished without its end marker (none if it did not finish)."""
        ...


class Writer(Protocol):
    """Events written for a client, in its dialect and framing."""

    heartbeat: bytes | None  # what keeps a silent stream alive, if the framing has it

    def write(self, events: list[Event]) -> bytes:
        """The bytes for these events (a ``Failure`` among them is written as the
        dialect's in-band error and ends the stream)."""
        ...

    def whole(self, answer: Answer) -> bytes:
        """One whole answer, for a client that asked for no stream."""
        ...

    def error(self, exc: CortexError) -> bytes:
        """The stream's last frame after a failure, once the response has started."""
        ...


class Translator(Protocol):
    """What the relay core feeds an upstream's lines to, and reads the client's bytes from.

    ``feed`` returns the bytes to send now (possibly none). Afterwards
    ``failure`` holds an error to raise once they are sent, and ``ended`` says
    the upstream finished (an error it reported was forwarded) so reading stops.
    ``complete`` says the answer's final message has been seen. ``close``
    runs at the upstream's end and raises if the answer is incomplete.
    A same-dialect passthrough and a cross-dialect ``CrossDialect`` are both one.
    """

    heartbeat: bytes | None
    reads_sse: bool
    failure: CortexError | None
    ended: bool
    complete: bool
    usage: Usage  # the token counts the upstream reported, once it did
    pieces: int  # pieces of the answer relayed, for when it reports none

    def feed(self, lines: list[bytes]) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, exc: CortexError) -> bytes: ...
