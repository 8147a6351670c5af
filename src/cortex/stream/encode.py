"""Client framings of an Ollama-style stream of JSON lines: NDJSON and SSE."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import CortexError, StreamFraming, in_band


@dataclass(frozen=True, slots=True)
class Framing:
    name: StreamFraming
    media_type: str
    headers: tuple[tuple[bytes, bytes], ...]
    heartbeat: bytes | None

    def lines(self, lines: list[bytes]) -> bytes:
        raise NotImplementedError

    def upstream_error(self, line: bytes) -> bytes:
        """Frame an ``{"error": ...}`` line that the upstream itself sent."""
        raise NotImplementedError

    def error(self, exc: CortexError) -> bytes:
        return in_band(exc, self.name)


class NDJSONFraming(Framing):
    def lines(self, lines: list[bytes]) -> bytes:
        if len(lines) == 1:
            return lines[0] + b"\n"
        return b"\n".join(lines) + b"\n"

    def upstream_error(self, line: bytes) -> bytes:
        return line + b"\n"


class SSEFraming(Framing):
    def lines(self, lines: list[bytes]) -> bytes:
        return b"".join([b"data: " + line + b"\n\n" for line in lines])

    def upstream_error(self, line: bytes) -> bytes:
        return b"event: error\ndata: " + line + b"\n\n"


NDJSON = NDJSONFraming(
    name="ndjson",
    media_type="application/x-ndjson",
    headers=(),
    heartbeat=None,
)
SSE = SSEFraming(
    name="sse",
    media_type="text/event-stream",
    headers=((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")),
    heartbeat=b": ping\n\n",
)


def wants_sse(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """The request's (first) ``Accept`` header asks for server-sent events; ``headers`` are
    the ASGI scope's, names in lower case."""
    for name, value in headers:
        if name == b"accept":
            return b"text/event-stream" in value
    return False
