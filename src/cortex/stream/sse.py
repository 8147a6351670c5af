"""Incremental server-sent events decoder, fed the lines of ``LineDecoder(keep_blank=True)``.

As the SSE specification reads a stream: an event is the ``data`` lines up to a
blank line, joined with ``\\n``; ``event`` names it; a line starting with ``:``
is a comment; ``id`` and ``retry`` are hints for the upstream's own clients and
are dropped. An event still open when the stream ends is dispatched (the
specification discards it, but servers that omit the last blank line exist,
and losing their ``[DONE]`` would make a finished answer look cut short).
"""

from __future__ import annotations

from typing import NamedTuple

COLON = ord(":")


class Event(NamedTuple):  # a tuple: made at once, a token's event at a time
    data: bytes
    name: bytes = b""  # the ``event`` field; empty means the default, "message"

    def encode(self) -> bytes:
        """The event as SSE bytes again, one ``data:`` line per line of its data."""
        head = b"event: " + self.name + b"\n" if self.name else b""
        if b"\n" not in self.data:
            return head + b"data: " + self.data + b"\n\n"
        return head + b"".join(b"data: " + part + b"\n" for part in self.data.split(b"\n")) + b"\n"


class SSEDecoder:
    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._name = b""

    def feed(self, lines: list[bytes]) -> list[Event]:
        """Read lines (blank ones included); return the events they completed."""
        count = len(lines)
        if 2 <= count <= 3 and not lines[-1] and not self._data and lines[-2][:6] == b"data: ":
            # one whole event, a token's usual lines: its data line, its name perhaps before
            if count == 2:
                event = Event(lines[0][6:], self._name)
                self._name = b""
                return [event]
            if lines[0][:7] == b"event: ":
                self._name = b""
                return [Event(lines[1][6:], lines[0][7:])]
        events: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(Event(b"\n".join(self._data), self._name))
                self._data, self._name = [], b""
            elif line[0] != COLON:
                field, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if field == b"data":
                    self._data.append(value)
                elif field == b"event":
                    self._name = value
        return events

    def flush(self) -> list[Event]:
        """End of the stream: the event left open, if it has data."""
        return self.feed([b""])
