"""A client's connection in memory: drives a uvicorn HTTP protocol without a socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.server import ServerState

App = Callable[..., Any]


class MemoryTransport(asyncio.Transport):
    """Keeps what the server writes; closing it tells the protocol the client is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.writes = 0  # how many writes (system calls, on a real socket) it took
        self.closed = False
        self.lost = False
        self.protocol: asyncio.Protocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.written += data
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.drop)

    def drop(self) -> None:
        """The connection ends (the client hung up, or a close took effect)."""
        self.closed = True
        if not self.lost and self.protocol is not None:
            self.lost = True
            self.protocol.connection_lost(None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 11434)}.get(
            name, default
        )


def connect(
    protocol_class: Callable[..., asyncio.Protocol], app: App
) -> tuple[Any, MemoryTransport]:
    """A protocol built the way uvicorn builds one, on a connection just made."""
    config = Config(app, ws="none", lifespan="off", log_config=None)
    config.load()
    protocol = protocol_class(
        config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
    )
    transport = MemoryTransport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol, transport


async def finished(protocol: Any) -> None:
    """Wait until the apps the protocol started have returned."""
    while protocol.tasks:
        await asyncio.wait(list(protocol.tasks))


def request(method: str = "POST", path: str = "/api/chat", body: bytes = b"{}") -> bytes:
    return b"%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s" % (
        method.encode(),
        path.encode(),
        len(body),
        body,
    )


class Answer:
    """An HTTP/1.1 response read back from the bytes a server wrote."""

    def __init__(self, raw: bytes) -> None:
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.complete = False
        parser = httptools.HttpResponseParser(self)
        parser.feed_data(raw)
        self.status = parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True
