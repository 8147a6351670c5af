"""The HTTP server: uvicorn on a listening socket that Córtex prepares itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import socket
from collections.abc import Callable
from multiprocessing.connection import Connection
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
from .listening import BACKLOG, Address, address_of, serving_mode, worker_socket
from .observe import logs
from .protocol import protocol_factory
from .workers import Supervisor

logger = logging.getLogger("cortex")


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
        backlog=BACKLOG,
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
    """Run until stopped, on ``settings.workers`` processes; False if it could not start.
    ``sock`` is the listening socket (``listening.listen_socket``), or with a socket per
    worker the address held for them (``listening.reserve``)."""
    raise_file_limit(settings)
    mode = serving_mode(settings.workers)
    if mode == "one process":
        server = build_server(settings, settle_after_start)
        server.run(sockets=[sock])
        return server.started
    address = address_of(sock)
    logger.info(
        "Córtex runs %d worker processes on http://%s:%d, %s",
        settings.workers,
        settings.host,
        address.port,
        "each with its own socket (SO_REUSEPORT: the kernel spreads new connections)"
        if mode == "a socket per worker"
        else "on one shared socket (no SO_REUSEPORT here: one may take most connections)",
    )
    if mode == "a socket per worker":
        settings = settings.model_copy(update={"port": address.port})
        supervisor = Supervisor(
            settings.workers, serve_worker, (settings, address), settings.drain_timeout
        )
        return supervisor.run()
    os.environ[SETTINGS_VARIABLE] = orjson.dumps(_revealed(settings)).decode()
    config = _config(settings, "cortex.server:app_from_environment", settings.workers)
    Multiprocess(config, sockets=[sock]).run()
    return True


def serve_worker(settings: Settings, address: Address, started: Connection) -> None:
    """One worker process with its own socket on ``address``; it says on ``started`` when
    its app has started, and drains on SIGTERM as a single process does."""
    logs.configure(settings.log_level)
    sock = worker_socket(settings, address)

    def after_start() -> None:
        settle_after_start()
        with contextlib.suppress(OSError), started:  # a supervisor gone is no reason to stop
            started.send_bytes(b"started")

    server = build_server(settings, after_start)
    server.run(sockets=[sock])


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
