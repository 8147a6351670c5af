"""Córtex's server protocol (protocol.py) as uvicorn's citizen: its bounds come from
the settings through a factory, and the conduit joins the scope's extensions."""

from __future__ import annotations

import asyncio
import pickle
import socket
import time
from typing import Any

import orjson
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cortex.conduit import ClientConduit
from cortex.config import Settings
from cortex.protocol import BoundedHttpToolsProtocol, protocol_factory, unframed
from cortex.server import build_server
from tests.conftest import StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.fakes.connection import connect, finished, request
from tests.helpers import read_until


def status_of(host: str, port: int, *parts: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        for part in parts:
            sock.sendall(part)
            time.sleep(0.05)
        return sock.recv(65536).split(b"\r\n", 1)[0]


def test_the_head_bounds_are_the_settings_of_each_server(start_gateway: StartGateway) -> None:
    head = b"GET /api/version HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n" % (b"a" * 4096)
    strict = start_gateway(max_head_bytes=2048, head_timeout=0.3)
    lenient = start_gateway()
    assert (
        status_of(strict.host, strict.port, head) == b"HTTP/1.1 431 Request Header Fields Too Large"
    )
    assert status_of(lenient.host, lenient.port, head) == b"HTTP/1.1 200 OK"
    slow = (b"GET /api/version HTTP/1.1\r\n", b"Host: local")
    assert status_of(strict.host, strict.port, *slow) == b"HTTP/1.1 408 Request Timeout"


def test_the_head_bounds_hold_for_every_request_on_a_kept_alive_connection(
    start_gateway: StartGateway,
) -> None:
    """The second request's head is bounded as the first's: its bytes once went uncounted
    (the count restarted at its first parsed byte, after its packet was counted), so a
    kept-alive connection took a head of any size, and a head sent in one packet that
    then stalled was dropped without its 408."""
    strict = start_gateway(max_head_bytes=2048, head_timeout=0.3)
    small = b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n"
    big = b"GET /api/version HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n" % (b"a" * 8192)
    with socket.create_connection((strict.host, strict.port), timeout=10) as sock:
        sock.sendall(small)
        assert read_until(sock, b"}").startswith(b"HTTP/1.1 200 OK")
        sock.sendall(big)
        status = read_until(sock, b"\r\n").split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    one_packet = (b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n",)
    assert status_of(strict.host, strict.port, *one_packet) == b"HTTP/1.1 408 Request Timeout"


def test_the_protocol_factory_pickles_with_its_bounds_for_worker_processes() -> None:
    config = build_server(Settings(max_head_bytes=2048, head_timeout=3)).config
    factory = pickle.loads(pickle.dumps(config.http))
    assert factory.func is BoundedHttpToolsProtocol
    assert factory.keywords == {"max_head": 2048, "head_timeout": 3.0}
    assert not [name for name in vars(config) if name.startswith("cortex")]


def test_the_conduit_joins_the_extensions_uvicorn_put_in_the_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    begin = HttpToolsProtocol.on_message_begin

    def with_an_extension(self: HttpToolsProtocol) -> None:
        begin(self)
        self.scope["extensions"] = {"http.response.trailers": {}}

    monkeypatch.setattr(HttpToolsProtocol, "on_message_begin", with_an_extension)
    extensions: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        extensions.append(dict(scope["extensions"]))  # as seen: the conduit leaves later
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async def scenario() -> None:
        protocol, _ = connect(protocol_factory(4096, 5.0), app)
        protocol.data_received(request())
        await finished(protocol)

    asyncio.run(asyncio.wait_for(scenario(), 10))
    [seen] = extensions
    assert seen["http.response.trailers"] == {}
    assert isinstance(seen["cortex.conduit"]["conduit"], ClientConduit)


def http_10(host: str, port: int, method: str, path: str, body: bytes = b"") -> bytes:
    """An HTTP/1.0 request; everything the server sends until it closes."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"%s %s HTTP/1.0\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s"
            % (method.encode(), path.encode(), len(body), body)
        )
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def test_an_http_10_client_gets_a_stream_without_chunked_framing(
    start_gateway: StartGateway, fake: FakeOllama
) -> None:
    """An HTTP/1.0 client reads no chunked framing (RFC 9112, 6.1): the stream's bytes come
    bare and end where the connection closes."""
    fake.script = Script(tokens=["Había", " una", " vez"], delay=0.01)
    gateway = start_gateway()
    chat = b'{"model": "%s", "messages": [{"role": "user", "content": "hola"}]}' % (
        DEFAULT_MODEL.encode()
    )
    head, _, body = http_10(gateway.host, gateway.port, "POST", "/api/chat", chat).partition(
        b"\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    lines = body.splitlines()
    assert [orjson.loads(line)["message"]["content"] for line in lines[:-1]] == [
        "Había",
        " una",
        " vez",
    ]
    assert orjson.loads(lines[-1])["done"] is True
    head, _, body = http_10(gateway.host, gateway.port, "GET", "/api/version").partition(
        b"\r\n\r\n"
    )
    assert b"content-length: %d" % len(body) in head.lower()
    assert "version" in orjson.loads(body)


def test_chunks_lose_exactly_their_framing() -> None:
    assert unframed(b"5\r\nHola \r\n3\r\n\r\n\r\r\n") == b"Hola \r\n\r"
    assert unframed(b"a\r\n0123456789\r\n0\r\n\r\n") == b"0123456789"
    assert unframed(b"0\r\n\r\n") == b""
    assert unframed(b"") == b""
