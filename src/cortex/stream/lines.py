"""Incremental NDJSON line decoder.

Upstream bodies arrive in arbitrary network chunks: a JSON line, or a UTF-8
character inside it, may be cut anywhere. The decoder splits on ``b"\\n"`` only
(NDJSON's definition of a line), keeps the unfinished tail, and never decodes
text itself, so a character cut in two is rejoined before anyone reads it.
"""

from __future__ import annotations

NEWLINE = ord("\n")


class LineTooLong(ValueError):
    """A line grew past the decoder's bound."""


class LineDecoder:
    """Pieces of an unfinished line are kept apart and joined once, when its newline comes,
    so a long line arriving in small pieces costs linear time, not quadratic.

    Blank lines mean nothing in NDJSON and are dropped, unless ``keep_blank``: in
    server-sent events they end an event.
    """

    def __init__(self, max_line_bytes: int = 8 * 1024 * 1024, *, keep_blank: bool = False) -> None:
        self._max = max_line_bytes
        self._keep_blank = keep_blank
        self._pieces: list[bytes] = []
        self._pending = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the complete lines it finished (without ``\\n``)."""
        newline = chunk.find(b"\n")
        last = len(chunk) - 1
        if 0 <= newline >= last - 1 and not self._pieces and newline <= self._max:
            # One whole line (an NDJSON token's usual chunk), or one and a blank line after
            # it (a server-sent event's); anything else goes the general way.
            line = chunk[:newline].rstrip(b"\r")
            if newline == last:
                return [line] if self._keep_blank or (line and not line.isspace()) else []
            if chunk[last] == NEWLINE:
                if self._keep_blank:
                    return [line, b""]
                return [line] if line and not line.isspace() else []
        if newline < 0:
            if chunk:
                self._pieces.append(chunk)
                self._pending += len(chunk)
                self._check_pending()
            return []
        if self._pieces:
            self._pieces.append(chunk)
            data = b"".join(self._pieces)
        else:
            data = chunk
        lines = data.split(b"\n")
        tail = lines.pop()
        self._pieces = [tail] if tail else []
        self._pending = len(tail)
        if len(data) > self._max and max(map(len, lines)) > self._max:
            raise LineTooLong(f"a line longer than {self._max} bytes")
        self._check_pending()
        if self._keep_blank:
            return [line.rstrip(b"\r") for line in lines]
        return [line.rstrip(b"\r") for line in lines if line.strip()]

    def flush(self) -> bytes | None:
        """End of input: return a last line that had no newline, if any."""
        tail = b"".join(self._pieces).rstrip(b"\r")
        self._pieces, self._pending = [], 0
        return tail if tail.strip() else None

    @property
    def pending(self) -> int:
        """Bytes held back waiting for a newline."""
        return self._pending

    def _check_pending(self) -> None:
        if self._pending > self._max:
            raise LineTooLong(f"a line longer than {self._max} bytes")
