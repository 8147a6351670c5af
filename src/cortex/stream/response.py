"""The ASGI response that relays an upstream to one client: its head, its parts, failover
before the first part, and the only honest end left after it (an in-band error).

Its body runs until it ends, the client goes or the drain runs out (``cut.py``);
cancelling it unwinds the relay and the upstream request with it, so a client that
hangs up stops the model within one event-loop turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..errors import CortexError, Dialect, StreamFraming, in_band, reply
from ..events import Usage
from ..observe import RequestRecord
from .cut import Cut, run_body
from .ends import Conduit

logger = logging.getLogger("cortex.relay")

FrameRenderer = Callable[[CortexError], bytes]
Headers = tuple[tuple[bytes, bytes], ...]

INTERNAL_ERROR = "internal error in the gateway"


@dataclass
class Attempt:
    """One try at an upstream: its relayed parts and how to frame a late error."""

    parts: AsyncGenerator[bytes, None]
    error_frame: FrameRenderer | None = None
    headers: Headers = ()
    on_first_part: Callable[[], None] = lambda: None
    usage: Callable[[], Usage] = Usage  # the token counts, read once the answer ended
    # Relays the rest below ASGI once the response started (stream/push.py), if it can;
    # returns the answer's last bytes, which go with the end of the body (one write).
    direct: Callable[[Conduit], Awaitable[bytes]] | None = None
    # The answer ended well with the parts given so far: the first can go with the end.
    ended: Callable[[], bool] = lambda: False


class Source(Protocol):
    """Where a response's body comes from; a failed attempt may be followed by another.

    An attempt that fails before anything reached the client is followed by
    another when ``retry`` says so (see ``routing/failover.py``).
    """

    def attempt(self) -> AbstractAsyncContextManager[Attempt]: ...

    def retry(self, exc: CortexError) -> bool: ...


class RelayResponse(Response):
    """Relay a source to the client and report failures the only honest way left.

    Response headers wait for the relay's first part: an error before it gets a
    real status (``errors.reply``, in the client's ``dialect``), one after it becomes
    an in-band frame (the attempt's ``error_frame``). With ``streaming=False`` the
    relay yields one whole body.

    With a ``heartbeat`` (Ollama's SSE framing), a client still waiting for the first
    part after ``heartbeat_every`` seconds (a queue, a model loading) gets the headers
    and a heartbeat comment, then one each interval: from then on an error is the
    framing's in-band frame, though a failover before the first part is still tried.
    """

    def __init__(
        self,
        source: Source,
        record: RequestRecord | None,
        *,
        media_type: str,
        dialect: Dialect,
        headers: Headers = (),
        streaming: bool = True,
        stopping: asyncio.Future[None] | None = None,
        heartbeat: bytes | None = None,
        heartbeat_every: float = 15.0,
        framing: StreamFraming = "ndjson",
        error_frame: FrameRenderer | None = None,
    ) -> None:
        self._source = source
        self._stopping = stopping
        self._started = False  # a part of the answer reached the client
        self._committed = False  # the headers went out (a heartbeat may come first)
        self._heartbeat = heartbeat
        self._heartbeat_every = heartbeat_every
        self._framing = framing
        # only a heartbeat sends beside the body: without one, nothing to take turns with
        self._sending: AbstractAsyncContextManager[object] = (
            asyncio.Lock() if heartbeat is not None and streaming else _ALONE
        )
        # until an attempt gives its own: a failure before one began (after a heartbeat)
        self._frame: FrameRenderer | None = error_frame
        self._media_type = media_type
        self._extra_headers = headers
        self._dialect = dialect
        self._streaming = streaming
        self.status_code = 200
        self.background = None
        self._record: RequestRecord | None = record
        self._conduit: Conduit | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._conduit = _conduit(scope)
        beat = None
        if self._heartbeat is not None and self._streaming:
            beat = partial(self._beat_until_started, send)
        why = await run_body(
            partial(self._send_body, send), receive, self._conduit, self._stopping, beat
        )
        if why is not None:
            await self._cut(why, send)

    async def _cut(self, why: Cut, send: Send) -> None:
        """The body was cancelled: the client left, or Córtex is shutting down."""
        if why == "gone":
            if self._record is not None:
                self._record.outcome = "client-cancelled"
            logger.info("client went away; upstream request closed")
            return
        shutting_down = CortexError("Córtex is shutting down; the answer was cut short", status=503)
        self._note_failure(shutting_down)
        await self._fail(send, self._started, shutting_down, self._frame)

    async def _beat_until_started(self, send: Send) -> None:
        assert self._heartbeat is not None
        while True:
            await asyncio.sleep(self._heartbeat_every)
            async with self._sending:
                if self._started:
                    return
                if not self._committed:
                    await send(self._head(()))
                    self._committed = True
                body = {"type": "http.response.body", "body": self._heartbeat, "more_body": True}
                await send(body)

    async def _send_body(self, send: Send) -> None:
        current: Attempt | None = None
        last = b""  # what the relay below ASGI left to send with the end
        while True:
            try:
                async with (
                    self._source.attempt() as attempt,
                    aclosing(attempt.parts) as parts,
                ):
                    self._frame, current = attempt.error_frame, attempt
                    async for part in parts:
                        if not self._started:
                            if self._record is not None:
                                self._record.first_token = time.monotonic()
                            whole = not self._streaming or attempt.ended()
                            try:
                                await self._start(send, part, attempt.headers, not whole)
                            finally:  # the backend's bookkeeping waits for the client's bytes
                                attempt.on_first_part()
                            self._started = True
                            if whole:
                                self._note_usage(attempt)
                                if self._record is not None:
                                    self._record.outcome = "done"
                                return
                            conduit = self._conduit
                            if attempt.direct is not None and conduit is not None and conduit.open:
                                last = await attempt.direct(conduit)
                                break
                            continue
                        await send({"type": "http.response.body", "body": part, "more_body": True})
                    self._note_usage(attempt)
            except CortexError as exc:
                if not self._started and self._source.retry(exc):
                    logger.info("retrying on another backend after: %s", exc.message)
                    continue
                self._note_failure(exc)
                if current is not None:
                    self._note_usage(current)
                await self._fail(send, self._started, exc, self._frame)
                return
            except Exception:
                logger.exception("relay failed")
                self._note_failure(CortexError(INTERNAL_ERROR))
                await self._fail(send, self._started, CortexError(INTERNAL_ERROR), self._frame)
                return
            break
        if self._record is not None:
            self._record.outcome = "done"
        if not self._started:
            await self._start(send, b"", (), self._streaming)
        await send({"type": "http.response.body", "body": last, "more_body": False})

    def _note_usage(self, attempt: Attempt) -> None:
        if self._record is not None:
            usage = attempt.usage()
            self._record.prompt_tokens = usage.prompt_tokens
            self._record.completion_tokens = usage.completion_tokens

    def _note_failure(self, exc: CortexError) -> None:
        if self._record is not None:
            self._record.outcome = exc.outcome

    def _head(self, headers: Headers, length: int | None = None) -> Message:
        all_headers = [(b"content-type", self._media_type.encode()), *self._extra_headers, *headers]
        if length is not None:
            all_headers.append((b"content-length", str(length).encode()))
        return {"type": "http.response.start", "status": 200, "headers": all_headers}

    async def _start(self, send: Send, first: bytes, headers: Headers, more: bool) -> None:
        async with self._sending:
            if not self._committed:  # else a heartbeat sent the headers, without these
                await send(self._head(headers, None if self._streaming else len(first)))
                self._committed = True
            await send({"type": "http.response.body", "body": first, "more_body": more})
            self._started = True

    async def _fail(
        self, send: Send, started: bool, exc: CortexError, frame: FrameRenderer | None
    ) -> None:
        async with self._sending:
            if started or self._committed:
                logger.warning("stream ended with an in-band error: %s", exc.message)
                data = frame(exc) if frame else in_band(exc, self._framing)
                await send({"type": "http.response.body", "body": data, "more_body": False})
                return
            status, headers, body = reply(exc, self._dialect)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})


_ALONE = nullcontext()  # the lock of a response whose body is its only sender: always free


def _conduit(scope: Scope) -> Conduit | None:
    """The server's way to write below ASGI, when it offers one (``protocol.py``)."""
    extension = scope.get("extensions", {}).get("cortex.conduit")
    return extension.get("conduit") if extension else None
