"""The same minimal streaming relay on each server and client stack that bench/stacks.py measures.

    .venv/bin/python bench/stacks_apps.py STACK --port PORT --upstream http://HOST:PORT

``POST /api/chat`` is sent on to ``{upstream}/api/chat`` over a kept-alive
connection, and each piece of the upstream's answer is written to the client as
it arrives, in its own HTTP chunk. No framework, no parsing, no error handling
beyond what the stack does itself. Stacks:

- ``uvicorn-aiohttp``, ``uvicorn-httpx``: a raw ASGI app on uvicorn (uvloop, httptools);
- ``granian-aiohttp``, ``granian-httpx``: the same app on granian (asgi, uvloop, 1 worker),
  run as ``granian --factory stacks_apps:<factory>`` with the upstream in ``$STACKS_UPSTREAM``;
- ``aiohttp-web``: an aiohttp.web handler and an aiohttp client, on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
import uvloop
from aiohttp import web

HOST = "127.0.0.1"
UPSTREAM_VARIABLE = "STACKS_UPSTREAM"
HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
MEDIA_TYPE = b"application/x-ndjson"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class Client(Protocol):
    """An upstream HTTP client: open and close, and stream one answer's body."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stream(self, body: bytes) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...


class AiohttpClient:
    def __init__(self, upstream: str) -> None:
        self.url = upstream + "/api/chat"
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    @asynccontextmanager
    async def stream(self, body: bytes) -> AsyncIterator[AsyncIterator[bytes]]:
        assert self.session is not None
        async with self.session.post(self.url, data=body, headers=HEADERS) as response:
            yield response.content.iter_any()


class HttpxClient:
    def __init__(self, upstream: str) -> None:
        self.url = upstream + "/api/chat"
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self.client = httpx.AsyncClient(limits=limits, timeout=None)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    @asynccontextmanager
    async def stream(self, body: bytes) -> AsyncIterator[AsyncIterator[bytes]]:
        assert self.client is not None
        async with self.client.stream("POST", self.url, content=body, headers=HEADERS) as response:
            yield response.aiter_raw()


CLIENTS: dict[str, Callable[[str], Client]] = {"aiohttp": AiohttpClient, "httpx": HttpxClient}


# ---- the raw ASGI relay -------------------------------------------------------------------------


def asgi_relay(client: Client) -> Asgi:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(client, receive, send)
        elif scope["type"] == "http":
            await relay(client, receive, send)

    return app


async def lifespan(client: Client, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await client.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await client.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def relay(client: Client, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    async with client.stream(body) as pieces:
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", MEDIA_TYPE)]})
        async for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


def asgi_aiohttp() -> Asgi:
    """granian's factory: the relay with an aiohttp client."""
    return asgi_relay(AiohttpClient(os.environ[UPSTREAM_VARIABLE]))


def asgi_httpx() -> Asgi:
    """granian's factory: the relay with an httpx client."""
    return asgi_relay(HttpxClient(os.environ[UPSTREAM_VARIABLE]))


# ---- servers ----------------------------------------------------------------------------------


def run_uvicorn(client: str, port: int, upstream: str) -> None:
    import uvicorn

    app = asgi_relay(CLIENTS[client](upstream))
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
    )


def run_granian(client: str, port: int, upstream: str) -> None:
    """Become ``granian`` (same process id), serving the factory of ``client``."""
    os.environ[UPSTREAM_VARIABLE] = upstream
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop"]
    argv += ["--workers", "1", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    argv += ["--working-dir", str(Path(__file__).parent), "--factory", f"stacks_apps:asgi_{client}"]
    os.execv(sys.executable, argv)


async def aiohttp_web(port: int, upstream: str) -> None:
    client = AiohttpClient(upstream)

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        response = web.StreamResponse(headers={"Content-Type": MEDIA_TYPE.decode()})
        response.enable_chunked_encoding()
        async with client.stream(body) as pieces:
            await response.prepare(request)
            async for piece in pieces:
                await response.write(piece)
        await response.write_eof()
        return response

    await client.start()
    app = web.Application()
    app.router.add_post("/api/chat", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    await asyncio.Event().wait()


def run_aiohttp_web(client: str, port: int, upstream: str) -> None:
    uvloop.run(aiohttp_web(port, upstream))


SERVERS: dict[str, Callable[[str, int, str], None]] = {
    "uvicorn": run_uvicorn,
    "granian": run_granian,
    "aiohttp": run_aiohttp_web,
}
STACKS = ("uvicorn-aiohttp", "uvicorn-httpx", "granian-aiohttp", "granian-httpx", "aiohttp-web")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", choices=STACKS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="http://host:port of the model server")
    args = parser.parse_args()
    server, client = args.stack.split("-")
    if args.stack == "aiohttp-web":
        server, client = "aiohttp", "aiohttp"
    SERVERS[server](client, args.port, args.upstream)


if __name__ == "__main__":
    main()
