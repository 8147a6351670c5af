"""The HTTP server: uvicorn on a listening socket that Córtex prepares itself."""

from __future__ import annotations

import logging
import math
import socket
from types import FrameType
from urllib.parse import urlsplit

import uvicorn

from .app import create_app
from .config import Settings

logger = logging.getLogger("cortex")


def listen_socket(settings: Settings) -> socket.socket:
    """Bind the listening socket.

    Accepted connections inherit its fixed send buffer, so the kernel cannot
    grow megabytes of queued answer for a client that reads slowly (Linux
    autotuning would); Córtex's own reads stop once that buffer is full.
    """
    family, type_, proto, _, address = socket.getaddrinfo(
        settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.client_socket_buffer)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def resolve_upstream(settings: Settings) -> Settings:
    """Settle ``upstream_kind = "auto"``: Ollama if it answers, else the embedded model."""
    if settings.upstream_kind != "auto":
        return settings
    parts = urlsplit(settings.upstream)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=0.5).close()
    except OSError:
        logger.info(
            "no model server is configured and none answers at %s: using the embedded model",
            settings.upstream,
        )
        return settings.model_copy(update={"upstream_kind": "local"})
    return settings.model_copy(update={"upstream_kind": "ollama"})


class DrainingServer(uvicorn.Server):
    """uvicorn, which on SIGTERM or SIGINT also starts the gateway's drain.

    uvicorn stops accepting at once and waits for open requests; Córtex lets
    answers run for ``drain_timeout`` seconds, then ends the rest with an
    explicit in-band error, just before uvicorn would cancel them silently.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        gw = getattr(getattr(self.config.app, "state", None), "gateway", None)
        if gw is not None:
            gw.begin_drain()
        super().handle_exit(sig, frame)


def build_server(settings: Settings) -> uvicorn.Server:
    return DrainingServer(
        uvicorn.Config(
            create_app(settings),
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(settings.drain_timeout) + 2,
        )
    )
