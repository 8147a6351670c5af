"""The ASGI response that relays an upstream to one client.

The body is produced in one task while the current one listens for
``http.disconnect``; whichever ends first cancels the other. Cancelling the
body task unwinds the relay and the upstream request with it, so a client
that hangs up stops the model within one event-loop turn (a server's ``send``
does nothing after a disconnect, so it cannot be relied on to notice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, aclosing, suppress

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..backends.base import UpstreamBody
from ..errors import CortexError

logger = logging.getLogger("cortex.relay")

Opener = Callable[[], AbstractAsyncContextManager[UpstreamBody]]
Relay = Callable[[UpstreamBody], AsyncGenerator[bytes, None]]
ErrorRenderer = Callable[[str, int], bytes]
FrameRenderer = Callable[[str], bytes]

INTERNAL_ERROR = "internal error in the gateway"


class RelayResponse(Response):
    """Open the upstream, relay it, and report failures the only honest way left.

    Response headers wait for the relay's first part: an error before it gets
    a real status (``error_body``), one after it becomes an in-band frame
    (``error_frame``). With ``streaming=False`` the relay yields one whole body.
    """

    def __init__(
        self,
        open_upstream: Opener,
        relay: Relay,
        *,
        media_type: str,
        error_body: ErrorRenderer,
        error_frame: FrameRenderer | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        streaming: bool = True,
    ) -> None:
        self._open = open_upstream
        self._relay = relay
        self._media_type = media_type
        self._extra_headers = headers
        self._error_body = error_body
        self._error_frame = error_frame
        self._streaming = streaming
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = asyncio.create_task(self._send_body(send))
        disconnect = asyncio.create_task(_wait_for_disconnect(receive))
        await asyncio.wait((body, disconnect), return_when=asyncio.FIRST_COMPLETED)
        if body.done():
            disconnect.cancel()
            body.result()
        else:
            body.cancel()
            with suppress(asyncio.CancelledError):
                await body
            logger.info("client went away; upstream request closed")

    async def _send_body(self, send: Send) -> None:
        started = False
        try:
            async with self._open() as upstream, aclosing(self._relay(upstream)) as parts:
                async for part in parts:
                    if not started:
                        await self._start(send, part)
                        started = True
                        if not self._streaming:
                            return
                        continue
                    await send({"type": "http.response.body", "body": part, "more_body": True})
        except CortexError as exc:
            await self._fail(send, started, exc.status, exc.message)
            return
        except Exception:
            logger.exception("relay failed")
            await self._fail(send, started, 500, INTERNAL_ERROR)
            return
        if not started:
            await self._start(send, b"")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self, send: Send, first: bytes) -> None:
        headers = [(b"content-type", self._media_type.encode()), *self._extra_headers]
        if not self._streaming:
            headers.append((b"content-length", str(len(first)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": first, "more_body": self._streaming})

    async def _fail(self, send: Send, started: bool, status: int, message: str) -> None:
        if started:
            logger.warning("stream ended with an in-band error: %s", message)
            frame = self._error_frame(message) if self._error_frame else b""
            await send({"type": "http.response.body", "body": frame, "more_body": False})
            return
        body = self._error_body(message, status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
