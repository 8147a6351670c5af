"""Incremental NDJSON line decoder.

Upstream bodies arrive in arbitrary network chunks: a JSON line, or a UTF-8
character inside it, may be cut anywhere. The decoder splits on ``b"\\n"`` only
(NDJSON's definition of a line), keeps the unfinished tail, and never decodes
text itself, so a character cut in two is rejoined before anyone reads it.
"""

from __future__ import annotations


class LineTooLong(ValueError):
    """A line grew past the decoder's bound."""


class LineDecoder:
    def __init__(self, max_line_bytes: int = 8 * 1024 * 1024) -> None:
        self._max = max_line_bytes
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the complete lines it finished (without ``\\n``)."""
        if b"\n" not in chunk:
            self._tail += chunk
            self._check_tail()
            return []
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        if len(data) > self._max and max(map(len, lines)) > self._max:
            raise LineTooLong(f"a line longer than {self._max} bytes")
        self._check_tail()
        return [line.rstrip(b"\r") for line in lines if line.strip()]

    def flush(self) -> bytes | None:
        """End of input: return a last line that had no newline, if any."""
        tail, self._tail = self._tail.rstrip(b"\r"), b""
        return tail if tail.strip() else None

    @property
    def pending(self) -> int:
        """Bytes held back waiting for a newline."""
        return len(self._tail)

    def _check_tail(self) -> None:
        if len(self._tail) > self._max:
            raise LineTooLong(f"a line longer than {self._max} bytes")
