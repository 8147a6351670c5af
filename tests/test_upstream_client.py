"""The lean upstream client (backends/h1.py via HTTPBackend) against hand-written HTTP servers.

Each server here is a few lines of asyncio on a real socket, so a test decides byte by
byte what the model server sends and when it closes its connection.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import Awaitable, Callable

import httptools
import pytest

from cortex.backends.base import Timeouts
from cortex.backends.http import HTTPBackend
from cortex.backends.signals import Stray, parse_failure
from cortex.errors import (
    UpstreamError,
    UpstreamIncomplete,
    UpstreamProtocolError,
    UpstreamStatus,
    UpstreamUnreachable,
)

TIMEOUTS = Timeouts(connect=2.0, first_byte=2.0, idle=2.0)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Runs ``handler`` for each connection and counts the connections."""

    def __init__(
        self,
        handler: Handler,
        base_path: str = "",
        api_key: str | None = None,
        userinfo: str = "",
    ) -> None:
        self._handler = handler
        self._userinfo = userinfo
        self._base_path = base_path
        self._api_key = api_key
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> HTTPBackend:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        url = f"http://{self._userinfo}127.0.0.1:{self.port}{self._base_path}"
        self.backend = HTTPBackend("ollama", url, TIMEOUTS, self._api_key)
        return self.backend

    async def __aexit__(self, *exc: object) -> None:
        await self.backend.close()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._handler(reader, writer)
        finally:
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


def answer(body: bytes, extra: bytes = b"", status: bytes = b"200 OK") -> bytes:
    head = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
    return head + body


def replying(response: bytes, seen: list[bytes] | None = None) -> Handler:
    """A server that reads one request (kept in ``seen``) and sends ``response``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if seen is not None:
            seen.append(request)
        writer.write(response)

    return handler


async def read_all(backend: HTTPBackend, path: str = "/api/chat") -> bytes:
    async with backend.open("POST", path, b'{"model":"m"}') as body:
        parts = []
        while chunk := await body.read():
            parts.append(chunk)
        return b"".join(parts)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def test_answers_on_one_connection_are_kept_alive_and_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(3):
            await read_request(reader)
            writer.write(answer(b'{"n":%d}' % n))

    async def scenario() -> None:
        server = Server(handler)
        async with server as backend:
            assert [await read_all(backend) for _ in range(3)] == [
                b'{"n":0}',
                b'{"n":1}',
                b'{"n":2}',
            ]
        assert server.connections == 1

    run(scenario)


@pytest.mark.parametrize("when", ["with the answer", "after the answer"])
def test_bytes_after_an_answer_close_its_connection_and_never_reach_the_next(when: str) -> None:
    """A server that sends more than its answer (a stray answer, in the same packet or
    later) must not have it read as the answer to the next request."""
    stray = answer(b'{"stray":true}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            await read_request(reader)
            if n == 0 and when == "with the answer":
                writer.write(answer(b'{"n":0}') + stray)
            else:
                writer.write(answer(b'{"n":%d}' % n))
                if n == 0:
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(stray)
            await writer.drain()
            n += 1

    async def scenario() -> None:
        server = Server(handler)
        async with server as backend:
            first = await read_all(backend)
            await asyncio.sleep(0.1)  # the stray bytes arrive while the connection is idle
            second = await read_all(backend)
        assert first == b'{"n":0}'
        assert second == b'{"n":0}'  # a new connection's first answer, not the stray one
        assert server.connections == 2

    run(scenario)


def test_a_reused_connection_closed_before_answering_is_sent_again_on_a_new_one() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(b"first"))
        await writer.drain()
        if len(seen) == 1:
            await read_request(reader)  # a kept-alive connection the server then drops

    async def scenario() -> None:
        server = Server(handler)
        async with server as backend:
            assert await read_all(backend) == b"first"
            assert await read_all(backend) == b"first"  # the retry, on a new connection
        assert server.connections == 2
        assert len(seen) == 2 and seen[0] == seen[1]

    run(scenario)


def test_a_new_connection_closed_before_answering_is_unreachable_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def scenario() -> None:
        server = Server(handler)
        async with server as backend:
            with pytest.raises(UpstreamUnreachable, match="closed the connection without"):
                await read_all(backend)
        assert server.connections == 1

    run(scenario)


def test_a_body_cut_short_of_its_length_is_incomplete() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    async def scenario() -> None:
        async with Server(handler) as backend:
            with pytest.raises(UpstreamIncomplete):
                await read_all(backend)

    run(scenario)


def test_a_body_delimited_by_the_end_of_the_connection_is_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"a":')
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"1}")

    async def scenario() -> None:
        server = Server(handler)
        async with server as backend:
            assert await read_all(backend) == b'{"a":1}'
            assert await read_all(backend) == b'{"a":1}'
        assert server.connections == 2  # such a connection is never reused

    run(scenario)


def test_chunked_answers_split_anywhere_arrive_whole() -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in range(len(wire)):
            writer.write(wire[byte : byte + 1])
            await writer.drain()

    async def scenario() -> None:
        async with Server(handler) as backend:
            assert await read_all(backend) == b"hello world"

    run(scenario)


def test_an_error_status_keeps_its_code_and_the_servers_message() -> None:
    body = b'{"error":"model \\"nope\\" not found, try pulling it first"}'
    handler = replying(answer(body, status=b"404 Not Found"))

    async def scenario() -> None:
        async with Server(handler) as backend:
            with pytest.raises(UpstreamStatus) as caught:
                await read_all(backend)
        assert caught.value.status == 404
        assert caught.value.message == 'model "nope" not found, try pulling it first'

    run(scenario)


def test_a_proxys_html_error_page_is_summed_up_by_its_title() -> None:
    body = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>...</body></html>"
    handler = replying(answer(body, status=b"502 Bad Gateway"))

    async def scenario() -> None:
        async with Server(handler) as backend:
            with pytest.raises(UpstreamStatus) as caught:
                await read_all(backend)
        assert (caught.value.status, caught.value.message) == (502, "502 Bad Gateway")

    run(scenario)


def test_a_busy_servers_retry_after_is_kept() -> None:
    body = b'{"error":{"message":"slow down","type":"rate_limit"}}'
    handler = replying(answer(body, b"Retry-After: 7\r\n", b"429 Too Many Requests"))

    async def scenario() -> None:
        async with Server(handler) as backend:
            with pytest.raises(UpstreamStatus) as caught:
                await read_all(backend)
        assert (caught.value.status, caught.value.retry_after) == (429, 7)
        assert caught.value.message == "slow down"

    run(scenario)


@pytest.mark.parametrize("status", [200, 404])
def test_a_compressed_answer_is_refused_by_name_not_read_as_garbage(status: int) -> None:
    body = gzip.compress(b'{"error":"model not found"}')
    handler = replying(answer(body, b"Content-Encoding: gzip\r\n", b"%d X" % status))

    async def scenario() -> None:
        async with Server(handler) as backend:
            with pytest.raises(UpstreamError) as caught:
                await read_all(backend)
        if status == 200:
            assert isinstance(caught.value, UpstreamProtocolError)
            assert "compressed answer (gzip)" in caught.value.message
        else:
            assert caught.value.status == 404
            assert caught.value.message == "the model server answered HTTP 404"

    run(scenario)


def test_the_request_carries_its_path_under_the_base_url_and_the_key() -> None:
    seen: list[bytes] = []
    handler = replying(answer(b"{}"), seen)

    async def scenario() -> None:
        server = Server(handler, "/v1", "sk-secret")
        async with server as backend:
            assert await read_all(backend, "/chat/completions") == b"{}"
        port = server.port
        head = seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[0] == b"POST /v1/chat/completions HTTP/1.1"
        assert f"Host: 127.0.0.1:{port}".encode() in head
        assert b"Authorization: Bearer sk-secret" in head
        assert seen[0].endswith(b'\r\n\r\n{"model":"m"}')

    run(scenario)


def test_credentials_in_the_url_are_sent_as_basic_auth_and_kept_out_of_the_host() -> None:
    seen: list[bytes] = []
    handler = replying(answer(b"{}"), seen)

    async def scenario() -> None:
        server = Server(handler, userinfo="al%40ice:s3cr%3At@")
        async with server as backend:
            assert await read_all(backend) == b"{}"
        head = seen[0].split(b"\r\n\r\n")[0].split(b"\r\n")
        expected = base64.b64encode(b"al@ice:s3cr:t")
        assert b"Authorization: Basic " + expected in head
        assert f"Host: 127.0.0.1:{server.port}".encode() in head

    run(scenario)


def test_a_reader_that_stops_reading_stops_the_socket_being_read() -> None:
    sent = 0
    piece = b"x" * 65536

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(piece) * 1000))
        for _ in range(1000):
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    async def scenario() -> None:
        async with Server(handler) as backend, backend.open("POST", "/api/chat", b"{}") as body:
            first = await body.read()
            await asyncio.sleep(0.5)  # read nothing: the client must stop reading the socket
            held_back = sent
            await asyncio.sleep(0.3)
            assert sent == held_back, "the server kept sending to a reader that reads nothing"
            assert len(first) + held_back < 16 * 1024 * 1024 < len(piece) * 1000
            total = len(first)
            while chunk := await body.read():
                total += len(chunk)
            assert total == len(piece) * 1000

    run(scenario)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid HTTP response"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "invalid HTTP response"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ws\r\n\r\n",
            "switched protocols",
        ),
    ],
)
def test_an_answer_the_parser_cannot_read_is_a_protocol_error(
    response: bytes, message: str
) -> None:
    async def scenario() -> None:
        async with Server(replying(response)) as backend:
            with pytest.raises(UpstreamProtocolError) as caught:
                await read_all(backend)
        assert message in caught.value.message

    run(scenario)


def test_a_failure_in_a_parser_callback_is_an_internal_error_and_a_stray_none() -> None:
    def raised(inside: Exception) -> Exception:
        """What httptools raises when a callback raised ``inside``."""
        exc = httptools.HttpParserCallbackError("the callback failed")
        exc.__context__ = inside
        return exc

    failure = parse_failure(raised(ValueError("a bug")))
    assert failure is not None and failure.message == "internal error in the gateway"
    assert not isinstance(failure, UpstreamError)  # Córtex's fault, not the server's
    assert parse_failure(raised(Stray())) is None
