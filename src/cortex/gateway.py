"""The state one running gateway owns: settings, the upstream session and backend."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import aiohttp
from starlette.requests import Request

from .backends.base import Timeouts
from .backends.http import HTTPBackend
from .backends.local import LocalBackend
from .catalog import DefaultModel, ModelEntry, from_openai, from_tags
from .config import Settings
from .stream.relay import RelayLimits, read_whole


@dataclass
class Gateway:
    settings: Settings
    session: aiohttp.ClientSession
    backend: HTTPBackend | LocalBackend = field(init=False)
    limits: RelayLimits = field(init=False)
    default_model: DefaultModel = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        timeouts = Timeouts(s.connect_timeout, s.first_byte_timeout, s.idle_timeout)
        api_key = s.upstream_api_key.get_secret_value() if s.upstream_api_key else None
        self.backend = (
            LocalBackend(
                s.local_model_path,
                s.local_model_name,
                chat_template=s.local_chat_template,
                threads=s.local_threads,
                context=s.local_context,
            )
            if s.kind == "local"
            else HTTPBackend(s.kind, s.upstream, self.session, timeouts, api_key)
        )
        self.limits = RelayLimits(
            first_byte=s.first_byte_timeout,
            idle=s.idle_timeout,
            heartbeat=s.heartbeat_interval,
            max_line_bytes=s.max_line_bytes,
            max_response_bytes=s.max_response_bytes,
        )
        self.default_model = DefaultModel(s.default_model, self.models, s.models_cache_seconds)

    async def fetch(self, path: str) -> bytes:
        """GET a small metadata document from the upstream, whole."""
        async with self.backend.open("GET", path) as body:
            return await read_whole(body, self.limits)

    async def post(self, path: str, payload: bytes) -> bytes:
        """POST a body and return the upstream's whole answer."""
        async with self.backend.open("POST", path, payload) as body:
            return await read_whole(body, self.limits)

    async def models(self) -> list[ModelEntry]:
        """The upstream's models, whatever its dialect."""
        if self.backend.kind == "openai":
            return from_openai(await self.fetch("/models"))
        return from_tags(await self.fetch("/api/tags"))

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        connector = aiohttp.TCPConnector(
            limit=0,
            keepalive_timeout=30,
            socket_factory=partial(_upstream_socket, settings.upstream_socket_buffer),
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        return cls(settings, session)

    async def close(self) -> None:
        if isinstance(self.backend, LocalBackend):
            await self.backend.close()
        await self.session.close()


def _upstream_socket(receive_buffer: int, addr_info: Any) -> socket.socket:
    """A socket whose fixed receive buffer stops the kernel from buffering megabytes
    of an answer that a slow client is not reading (autotuning would grow it)."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    return sock


def gateway(request: Request) -> Gateway:
    return cast(Gateway, request.app.state.gateway)
