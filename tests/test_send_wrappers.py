"""Wrappers of ``send`` and the conduit (conduit.py): the body is written below ASGI only
when every wrapper between the response and the server let it through as it was sent.

The app here does what ``stream/response.py`` does: the head and a first part through
``send``, then the rest through the conduit if it is open, else through ``send``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

from cortex.conduit import HELD_BACK
from cortex.config import Settings
from cortex.protocol import protocol_factory
from tests.conftest import RunningGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.fakes.connection import Answer, MemoryTransport, connect, finished, request
from tests.helpers import post_chat

Send = Callable[[dict[str, Any]], Awaitable[None]]
Wrapper = Callable[[Send], Send]
HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}
TOKENS = ["Había", " una", " vez"]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def relaying(wrap: Wrapper, opened: list[bool]) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        conduit = scope["extensions"]["cortex.conduit"]["conduit"]
        send = wrap(send)
        head = [(b"content-type", b"application/x-ndjson")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": b"uno\n", "more_body": True})
        opened.append(conduit.open)
        if opened[-1]:
            conduit.write(b"dos\n")
        else:
            await send({"type": "http.response.body", "body": b"dos\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def serve(wrap: Wrapper, method: str = "POST") -> tuple[bool, MemoryTransport]:
    opened: list[bool] = []

    async def scenario() -> MemoryTransport:
        protocol, transport = connect(protocol_factory(4096, 5.0), relaying(wrap, opened))
        protocol.data_received(request(method))
        await finished(protocol)
        return transport

    transport = asyncio.run(asyncio.wait_for(scenario(), 10))
    return opened == [True], transport


def naming_itself(send: Send) -> Send:
    async def named(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], (b"x-request-id", b"abc")]
        await send(message)

    return named


def test_a_wrapper_that_touches_only_the_head_leaves_the_conduit_open() -> None:
    opened, transport = serve(naming_itself)
    answer = Answer(bytes(transport.written))
    assert opened
    assert answer.headers[b"x-request-id"] == b"abc"
    assert answer.complete and answer.body == b"uno\ndos\n"


def compressing(send: Send) -> Send:
    gzip = zlib.compressobj(wbits=31)

    async def compressed(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], (b"content-encoding", b"gzip")]
        else:
            more = message.get("more_body", False)
            body = gzip.compress(message["body"]) + (b"" if more else gzip.flush())
            message = {**message, "body": body}
        await send(message)

    return compressed


def test_a_wrapper_that_encodes_the_body_keeps_the_conduit_shut() -> None:
    opened, transport = serve(compressing)
    answer = Answer(bytes(transport.written))
    assert not opened
    assert zlib.decompress(bytes(answer.body), wbits=31) == b"uno\ndos\n"


def emptying(send: Send) -> Send:
    async def emptied(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return emptied


def test_a_wrapper_that_empties_the_body_keeps_the_conduit_shut() -> None:
    opened, transport = serve(emptying)
    answer = Answer(bytes(transport.written))
    assert not opened
    assert answer.complete and answer.body == b""


def test_a_head_request_keeps_the_conduit_shut() -> None:
    opened, transport = serve(naming_itself, method="HEAD")
    assert not opened
    assert transport.written.endswith(b"\r\n\r\n") and b"uno" not in transport.written


def in_another_task(send: Send) -> Send:
    """Hands each message to a task of its own, as Starlette's BaseHTTPMiddleware does."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            message = await queue.get()
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                return

    task = asyncio.get_running_loop().create_task(forward())

    async def handed(message: dict[str, Any]) -> None:
        await queue.put(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            await task

    return handed


def test_a_wrapper_that_sends_from_another_task_keeps_the_conduit_shut() -> None:
    opened, transport = serve(in_another_task)
    answer = Answer(bytes(transport.written))
    assert not opened
    assert answer.complete and answer.body == b"uno\ndos\n"


def one_behind(send: Send) -> Send:
    """Holds each body message until the next one comes."""
    held: list[dict[str, Any]] = []

    async def behind(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        if held:
            await send(held.pop())
        if message.get("more_body"):
            held.append(message)
        else:
            await send(message)

    return behind


def test_a_wrapper_that_holds_the_body_back_keeps_the_conduit_shut() -> None:
    opened, transport = serve(one_behind)
    answer = Answer(bytes(transport.written))
    assert not opened
    assert answer.complete and answer.body == b"uno\ndos\n"


def replaying(send: Send) -> Send:
    first: list[dict[str, Any]] = []

    async def replayed(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if not first:
                first.append(message)
            elif not message.get("more_body"):
                await send(first[0])  # sent late, after what the relay wrote below ASGI
        await send(message)

    return replayed


def test_a_body_message_held_past_the_direct_writes_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opened, transport = serve(replaying)
    assert opened, "what reached the server before the handover was as sent"
    assert transport.closed
    assert transport.written.endswith(b"4\r\ndos\n\r\n"), "nothing out of order reached the client"
    assert HELD_BACK in caplog.text


class Passing(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        return response


def test_behind_starlettes_base_http_middleware_a_stream_goes_through_send(
    fake: FakeOllama, direct_calls: list[str]
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.01, created_at="2024-06-01T10:00:00Z")
    direct = post_chat(fake.url, HELLO)
    gateway = RunningGateway(Settings(upstream=fake.url, host="127.0.0.1", port=0))
    gateway.server.config.app = Passing(gateway.server.config.app)
    with gateway:
        relayed = post_chat(gateway.url, HELLO)
    assert relayed.status_code == 200
    assert relayed.content == direct.content
    assert direct_calls == []


def test_an_allowed_origin_still_streams_below_asgi_with_its_cors_headers(
    fake: FakeOllama, gateway: RunningGateway, direct_calls: list[str]
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.01, created_at="2024-06-01T10:00:00Z")
    direct = post_chat(fake.url, HELLO)
    origin = "http://localhost:5173"
    relayed = post_chat(gateway.url, HELLO, headers={"Origin": origin})
    assert relayed.headers["access-control-allow-origin"] == origin
    assert relayed.content == direct.content
    assert direct_calls == ["ClientConduit"]
    head = httpx.head(gateway.url + "/api/tags", headers={"Origin": origin}, timeout=5)
    tags = httpx.get(gateway.url + "/api/tags", headers={"Origin": origin}, timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == tags.headers["content-length"]
    assert orjson.loads(tags.content)["models"]
