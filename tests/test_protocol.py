"""Córtex's server protocol (protocol.py) as uvicorn's citizen: its bounds come from
the settings through a factory, and the conduit joins the scope's extensions."""

from __future__ import annotations

import asyncio
import pickle
import socket
import time
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cortex.conduit import ClientConduit
from cortex.config import Settings
from cortex.protocol import BoundedHttpToolsProtocol, protocol_factory
from cortex.server import build_server
from tests.conftest import StartGateway
from tests.fakes.connection import connect, finished, request


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
