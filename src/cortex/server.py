"""The HTTP server: uvicorn on a listening socket that Córtex prepares itself."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import resource
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import uvicorn
from pydantic import BaseModel, SecretStr
from uvicorn.supervisors import Multiprocess

from .app import create_app
from .config import Settings
from .gcpolicy import settle_after_start
from .protocol import protocol_factory

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
    """Settle ``upstream_kind = "auto"``: Ollama if it answers, else the embedded model.
    Configured ``backends`` are used as they are: there is nothing to settle."""
    if settings.upstream_kind != "auto" or settings.backends:
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


def _config(settings: Settings, app: Any, workers: int = 1) -> uvicorn.Config:
    protocol = protocol_factory(settings.max_head_bytes, settings.head_timeout)
    return uvicorn.Config(
        app,
        http=cast("type[asyncio.Protocol]", protocol),  # uvicorn only calls it, with keywords
        factory=isinstance(app, str),
        workers=workers,
        # uvicorn answers 503 to a request read while this many connections are open,
        # counting the request's own: + 1 lets max_connections streams run.
        limit_concurrency=settings.max_connections + 1,
        log_level="warning",
        access_log=False,
        server_header=False,
        # uvicorn cancels what is left after this; Córtex ends it explicitly first.
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout) + 2,
    )


def build_server(settings: Settings, started: Callable[[], None] | None = None) -> uvicorn.Server:
    return uvicorn.Server(_config(settings, create_app(settings, started)))


def raise_file_limit(settings: Settings) -> int:
    """Lift the soft open-file limit toward what ``max_connections`` streams need (each holds
    a client and an upstream socket), as far as the hard limit allows; the soft limit now."""
    wanted = 2 * settings.max_connections + FILES_IN_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < wanted:
        logger.warning(
            "the open-file limit (%d) allows about %d streams at once, not max_connections=%d; "
            "raise it (ulimit -n) or lower max_connections",
            soft,
            (soft - FILES_IN_RESERVE) // 2,
            settings.max_connections,
        )
    return soft


FILES_IN_RESERVE = 256  # the listening socket, logs, health checks, Redis, the model file


def serve(settings: Settings, sock: socket.socket) -> bool:
    """Run until stopped, on ``settings.workers`` processes; False if it could not start."""
    raise_file_limit(settings)
    if settings.workers == 1:
        server = build_server(settings, settle_after_start)
        server.run(sockets=[sock])
        return server.started
    os.environ[SETTINGS_VARIABLE] = orjson.dumps(_revealed(settings)).decode()
    config = _config(settings, "cortex.server:app_from_environment", settings.workers)
    Multiprocess(config, sockets=[sock]).run()
    return True


SETTINGS_VARIABLE = "CORTEX_WORKER_SETTINGS"


def app_from_environment() -> Any:
    """The app of one worker process, from the settings its parent resolved."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_VARIABLE])
    return create_app(settings, settle_after_start)


def _revealed(settings: Settings) -> Any:
    """The settings as JSON-ready data, secrets included (for a child process only)."""

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, BaseModel):
            return {k: reveal(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, list):
            return [reveal(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return reveal(settings)
