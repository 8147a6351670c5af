"""A request body streamed to a model server as the client sends it: an Ollama blob
(a model's weights, often gigabytes), which Córtex must neither hold whole nor refuse.

Each ``Upload`` has a connection of its own: the head first, then each piece of the
client's body as it comes, written only as fast as the server reads it (the connection
tells its ``writer`` when its send buffer fills and empties), so a gateway in front of a slow
disk holds one buffer's worth, not the file. The body keeps the client's framing: its
``Content-Length`` when it gave one, else chunked. A server may answer before the body
ended (Ollama answers 200 at once for a blob it has): the upload stops sending, and the
connection is closed at the end rather than kept, since it carries an unread body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..errors import UpstreamIncomplete
from .h1 import Connection
from .http import HTTPBackend, no_answer, status_error
from .signals import Closed, Late, Stale

MAX_ANSWER = 64 * 1024  # bytes of a success answer read (Ollama's is empty)
BROKEN = "the model server closed the connection before it answered the upload"


class Upload:
    """One model server's copy of a streamed body: ``start``, ``send`` each piece,
    ``finish`` for the server's status; ``close`` in every case."""

    def __init__(
        self, backend: HTTPBackend, path: str, length: int | None, request_id: str
    ) -> None:
        self._backend = backend
        chunked = b"Transfer-Encoding: chunked"
        framing = chunked if length is None else b"Content-Length: %d" % length
        self._head = backend.upload_head(path, framing, request_id)
        self._chunked = length is None
        self._connection: Connection | None = None
        self._answer: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # set while the buffer is full

    @property
    def answer(self) -> asyncio.Future[None]:
        """Done when the server answered (or went away)."""
        assert self._answer is not None, "start() comes first"
        return self._answer

    async def start(self) -> None:
        self._connection = await self._backend.connect()
        self._connection.writer = self
        self._answer = self._connection.begin(self._head)
        self._answer.add_done_callback(_seen)  # an upload cut short never awaits its answer

    async def send(self, piece: bytes) -> None:
        """Write a piece of the body, and wait until the server has read enough of it.
        A server that answered already gets no more: its error, or its going away, is
        raised at once (the client need not send gigabytes more to learn of it)."""
        connection, answer = self._connection, self._answer
        assert connection is not None and answer is not None, "start() comes first"
        if answer.done():
            if answer.exception() is not None or connection.status >= 300:
                await self.finish()  # raises what went wrong
            return
        if piece:
            connection.write(b"%x\r\n%s\r\n" % (len(piece), piece) if self._chunked else piece)
            if self._drained is not None:  # until the server read enough, answered or went
                await asyncio.wait([self._drained, answer], return_when=asyncio.FIRST_COMPLETED)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def finish(self) -> int:
        """The body ended: the server's success status, or its error raised."""
        connection, answer = self._connection, self._answer
        assert connection is not None and answer is not None, "start() comes first"
        if self._chunked and not answer.done():
            connection.write(b"0\r\n\r\n")
        first_byte = self._backend.first_byte
        try:
            await connection.answered(answer, connection.loop.time() + first_byte)
        except Late:
            raise no_answer(first_byte) from None
        except (Stale, Closed):
            raise UpstreamIncomplete(BROKEN) from None
        if connection.status >= 300:
            raise await status_error(connection)
        size = 0
        while size <= MAX_ANSWER and (chunk := await connection.read()):
            size += len(chunk)
        return connection.status

    def close(self) -> None:
        if self._connection is not None:
            self._connection.writer = None  # they held each other
            self._connection.close()


async def stream_to(uploads: list[Upload], pieces: AsyncIterator[bytes]) -> None:
    """Each piece of a body to every upload, until the body ends. An upload that fails
    (its server went away, or answered with an error) is raised at once, also while the
    client's next piece is awaited: a client that sent everything the buffers hold
    learns of it then, not after ``body_timeout``."""
    watched: dict[asyncio.Future[Any], Upload] = {upload.answer: upload for upload in uploads}
    while True:
        reading: asyncio.Future[Any] = asyncio.ensure_future(anext(pieces))
        try:
            while not reading.done():
                done, _ = await asyncio.wait(
                    [reading, *watched], return_when=asyncio.FIRST_COMPLETED
                )
                for answer in done:
                    if answer is not reading:  # raises a failure; a success waits
                        await watched.pop(answer).send(b"")
        finally:
            if not reading.done():  # the body is closed after: its read must have ended
                reading.cancel()
                await asyncio.wait([reading])
        try:
            piece = reading.result()
        except StopAsyncIteration:
            return
        for upload in uploads:
            await upload.send(piece)


def _seen(answer: asyncio.Future[None]) -> None:
    if not answer.cancelled():
        answer.exception()
