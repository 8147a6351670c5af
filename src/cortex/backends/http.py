"""A model server reached over HTTP (Ollama or OpenAI-compatible), through a lean client
(``backends/h1.py``) with a pool of kept-alive connections per backend (``backends/pool.py``)."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import re
import socket
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from ..config import UpstreamKind
from ..errors import (
    ConnectTimeout,
    FirstByteTimeout,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatus,
    UpstreamUnreachable,
)
from ..urls import redact_url
from .anthropic import ANTHROPIC
from .base import Timeouts, Wire
from .h1 import Connection
from .ollama import OLLAMA
from .openai import OPENAI
from .pool import Pool
from .signals import Closed, Late, Stale

logger = logging.getLogger("cortex.upstream")
WIRES: dict[str, Wire] = {"ollama": OLLAMA, "openai": OPENAI, "anthropic": ANTHROPIC}

MAX_ERROR_BODY = 64 * 1024
CLOSED = "it closed the connection without answering"
HTML_TITLE = re.compile(r"<title[^>]*>([^<]*)</title>", re.IGNORECASE)


class HTTPBackend:
    """One upstream: its dialect (``kind``), base URL and optional API key.

    Paths are relative to the base URL: ``/api/chat`` for Ollama, and
    ``/chat/completions`` under an OpenAI base URL that ends in ``/v1``.
    """

    def __init__(
        self,
        kind: UpstreamKind,
        base_url: str,
        timeouts: Timeouts,
        api_key: str | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.wire: Wire = WIRES[kind]
        # An Ollama server: its own version, and models pulled, created, copied, deleted.
        self.manages_models = kind == "ollama"
        self.base_url = base_url
        parts = urlsplit(base_url)
        self.root_url = f"{parts.scheme}://{parts.netloc}"  # /metrics and /slots live here
        self._prefix = parts.path.rstrip("/")
        tls = ssl.create_default_context() if parts.scheme == "https" else None
        self.host, self.port = parts.hostname or "localhost", parts.port or (443 if tls else 80)
        self._pool = Pool(self.host, self.port, tls, receive_buffer)
        self._timeouts = timeouts
        headers = [
            f"Host: {parts.netloc.rpartition('@')[2]}",
            "Content-Type: application/json",
            "Accept-Encoding: identity",
            "User-Agent: cortex",
        ]
        if api_key:
            headers.append(f"Authorization: Bearer {api_key}")
        elif parts.username is not None:  # http://user:password@host, as behind a proxy
            headers.append(f"Authorization: Basic {_basic(parts.username, parts.password)}")
        self._headers = ("\r\n".join(headers) + "\r\n").encode("latin-1")
        headers[1] = "Content-Type: application/octet-stream"  # a streamed blob's (upload.py)
        self._upload_headers = ("\r\n".join(headers) + "\r\n").encode("latin-1")

    def open(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        first_byte: float | None = None,
        *,
        from_root: bool = False,
        request_id: str | None = None,
        trace: bytes = b"",
    ) -> Answer:
        """Send a request; enter with the connection, whose body reads the answer, once
        the upstream answered with a success status.

        Leaving the block before the answer ended (a client went away, a timeout)
        closes the upstream connection at once, which makes Ollama stop generating.
        ``trace`` is header lines of W3C trace context (``cortex/telemetry``).
        """
        target = path if from_root else self._prefix + path
        request = self._request(method, target, body, request_id, trace)
        return Answer(self, request, first_byte or self._timeouts.first_byte)

    @property
    def problem(self) -> str | None:
        """Why it cannot answer, when Córtex knows without asking it (never, over HTTP)."""
        return None

    def describe(self, name: str | None) -> str:
        """For the start-up line: ``name`` is None when it is the only backend."""
        named = f" {name}" if name else ""
        where = f"{self.wire.server}{named} at {redact_url(self.base_url)}"
        return where if name else f"relaying to {where}"

    def report(self) -> dict[str, Any]:
        """What ``/cortex/backends`` shows of it besides the router's figures."""
        return {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._pool.close()

    def upload_head(self, path: str, framing: bytes, request_id: str) -> bytes:
        """The head of a POST whose body is streamed after it (``upload.py``); ``framing``
        is its Content-Length or Transfer-Encoding line."""
        target = (self._prefix + path).encode()
        return b"POST %s HTTP/1.1\r\n%sX-Request-ID: %s\r\n%s\r\n\r\n" % (
            target,
            self._upload_headers,
            request_id.encode(),
            framing,
        )

    async def connect(self) -> Connection:
        """A new connection, within the connect timeout."""
        return await self._connect(math.inf, self._timeouts.first_byte)

    @property
    def first_byte(self) -> float:
        """How long the server may take to answer once it has the whole request."""
        return self._timeouts.first_byte

    def _request(
        self, method: str, target: str, body: bytes | None, request_id: str | None, trace: bytes
    ) -> bytes:
        head = b"%s %s HTTP/1.1\r\n%s%s" % (method.encode(), target.encode(), self._headers, trace)
        if request_id is not None:
            head += b"X-Request-ID: %s\r\n" % request_id.encode()
        if body is None:
            return head + b"\r\n" if method == "GET" else head + b"Content-Length: 0\r\n\r\n"
        return b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)

    async def _send(self, request: bytes, first_byte: float) -> Connection:
        connection = self._pool.take()
        # a kept-alive connection knows its loop: no getpid call to find the running one
        loop = connection.loop if connection is not None else asyncio.get_running_loop()
        deadline = loop.time() + first_byte
        while True:
            reused = connection is not None
            if connection is None:
                connection = await self._connect(deadline, first_byte)
            try:
                await connection.answered(connection.begin(request), deadline)
                return connection
            except Stale:
                connection.close()
                if not reused:
                    raise self._unreachable(CLOSED) from None
                connection = self._pool.take()
            except Late:
                raise no_answer(first_byte) from None
            except Closed:
                connection.close()
                raise self._unreachable(CLOSED) from None
            except BaseException:
                connection.close()
                raise

    async def _connect(self, deadline: float, first_byte: float) -> Connection:
        connect = self._timeouts.connect
        loop = asyncio.get_running_loop()
        connect_by = loop.time() + connect
        try:
            async with asyncio.timeout_at(min(connect_by, deadline)):
                return await self._pool.connect()
        except TimeoutError:
            if connect_by > deadline:
                raise no_answer(first_byte) from None
            raise ConnectTimeout(
                f"timed out connecting to the model server after {connect:g} s"
            ) from None
        except socket.gaierror:
            raise self._unreachable("its host name does not resolve") from None
        except ssl.SSLError as exc:
            raise self._unreachable(f"TLS failed ({exc.reason or exc})") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else "connection failed"
            raise self._unreachable(reason.lower()) from None

    def _unreachable(self, reason: str) -> UpstreamError:
        logger.warning("model server %s unreachable: %s", redact_url(self.base_url), reason)
        return UpstreamUnreachable(f"cannot reach the model server: {reason}")


class Answer:
    """``HTTPBackend.open``'s block: a class, not a generator, as it is on every request's
    way to the upstream (no async generator to start, hook and finalize)."""

    __slots__ = ("_backend", "_connection", "_first_byte", "_request")

    def __init__(self, backend: HTTPBackend, request: bytes, first_byte: float) -> None:
        self._backend = backend
        self._request = request
        self._first_byte = first_byte
        self._connection: Connection | None = None

    async def __aenter__(self) -> Connection:
        backend = self._backend
        connection = await backend._send(self._request, self._first_byte)
        if connection.status >= 300:
            try:
                raise await status_error(connection)
            finally:
                backend._pool.give_back(connection)
        self._connection = connection
        return connection

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            self._backend._pool.give_back(self._connection)


def _basic(user: str, password: str | None) -> str:
    pair = f"{unquote(user)}:{unquote(password or '')}"
    return base64.b64encode(pair.encode()).decode("ascii")


def no_answer(first_byte: float) -> FirstByteTimeout:
    return FirstByteTimeout(f"the model server did not answer within {first_byte:g} s")


async def status_error(connection: Connection) -> UpstreamError:
    """Turn an upstream error status into an error that keeps its status and message."""
    status = connection.status
    raw = b""
    if connection.encoding is None:  # a compressed message cannot be read
        try:
            async with asyncio.timeout(5):
                raw = await _read_some(connection, MAX_ERROR_BODY)
        except (TimeoutError, UpstreamError):
            pass
    message = _error_message(raw) or f"the model server answered HTTP {status}"
    if status < 400:
        return UpstreamProtocolError(f"the model server answered with a redirect (HTTP {status})")
    error = UpstreamStatus(message, status=status)
    if status == 404:  # the routes called exist on every model server: the model does not
        error.code = "model_not_found"
    if status in (429, 503) and connection.retry_after is not None:
        error.retry_after = min(connection.retry_after, 3600)
    return error


async def _read_some(connection: Connection, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit and (chunk := await connection.read()):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:limit]


def _error_message(raw: bytes) -> str | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        if text.startswith("<"):  # a proxy's HTML page: its title, if it has one, says enough
            title = HTML_TITLE.search(text)
            return " ".join(title.group(1).split())[:300] if title else None
        return text[:300] or None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None
