"""Ollama's progress streams (pull, push, create) relayed from one or more Ollama servers.

Each server's NDJSON progress lines (``{"status", "digest", "total", "completed"}``)
go to the client as they came; with several servers, one after another, and only
the last server's ``{"status":"success"}`` is passed on, so the client sees one
stream that ends once, after every server succeeded. A server's ``{"error": …}``
line ends it. A client that asked for no stream gets the last line alone, or the
error with a status, as Ollama's own ``waitForStream`` answers.

The response is ``stream/response.RelayResponse``: a client that hangs up cancels
the relay and closes the upstream request; an error after the first line is the
stream's last line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson

from ..context import RequestContext
from ..errors import CortexError, IdleTimeout, UpstreamProtocolError, UpstreamStatus
from ..gateway import Gateway
from ..routing import Member
from ..stream.lines import LineDecoder, LineTooLong
from ..stream.response import Attempt, RelayResponse
from .replies import JSON_MEDIA_TYPE

NDJSON_MEDIA_TYPE = "application/x-ndjson"


@dataclass
class ProgressSource:
    """A ``stream.response.Source`` relaying one call to ``targets`` in turn."""

    gw: Gateway
    targets: list[Member]
    path: str
    body: bytes
    stream: bool
    ctx: RequestContext
    after: Callable[[], Awaitable[object]]  # once every target succeeded

    def retry(self, exc: CortexError) -> bool:
        return False  # a half-done pull is not started again elsewhere

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[Attempt]:
        yield Attempt(parts=self._parts())

    async def _parts(self) -> AsyncGenerator[bytes, None]:
        final = b""
        for index, member in enumerate(self.targets):
            self.ctx.record.backend = member.name
            last = index == len(self.targets) - 1
            async for line in self._lines(member):
                if _status(line) == "success":
                    final = line
                    if last:
                        await self.after()
                        yield line
                    continue
                final = line
                if self.stream:
                    yield line
        if not self.stream and not final:
            raise UpstreamProtocolError("the model server ended without a progress line")

    async def _lines(self, member: Member) -> AsyncGenerator[bytes, None]:
        limits = self.gw.limits
        wait = max(self.gw.settings.load_timeout, limits.idle)  # checksums can take long
        decoder = LineDecoder(limits.max_line_bytes)
        opened = member.backend.open(
            "POST", self.path, self.body, limits.first_byte, request_id=self.ctx.record.id
        )
        async with opened as upstream:
            while True:
                try:
                    async with asyncio.timeout(wait):
                        chunk = await upstream.read()
                    lines = decoder.feed(chunk) if chunk else [decoder.flush() or b""]
                except TimeoutError:
                    raise IdleTimeout(f"the model server sent no progress for {wait:g} s") from None
                except LineTooLong:
                    raise UpstreamProtocolError("the model server sent too long a line") from None
                for line in lines:
                    if line:
                        yield _checked(line, member) + b"\n"
                if not chunk:
                    return


def _checked(line: bytes, member: Member) -> bytes:
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the model server's progress line is not JSON") from None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        raise UpstreamStatus(f"{member.name}: {parsed['error']}", status=500)
    return line


def _status(line: bytes) -> object:
    parsed = orjson.loads(line)
    return parsed.get("status") if isinstance(parsed, dict) else None


def progress_response(source: ProgressSource) -> RelayResponse:
    """The client's answer: NDJSON lines, or the last one alone as JSON."""
    return RelayResponse(
        source,
        source.ctx.record,
        media_type=NDJSON_MEDIA_TYPE if source.stream else JSON_MEDIA_TYPE,
        dialect="ollama",
        streaming=source.stream,
        stopping=source.gw.stopping,
        framing="ndjson",
    )
