"""A model server reached over HTTP (Ollama or OpenAI-compatible), through one aiohttp session."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import orjson

from .. import observe
from ..config import UpstreamKind
from ..errors import (
    ConnectTimeout,
    FirstByteTimeout,
    UpstreamError,
    UpstreamIncomplete,
    UpstreamProtocolError,
    UpstreamStatus,
    UpstreamUnreachable,
)
from ..urls import redact_url
from .base import Timeouts, Wire
from .ollama import OLLAMA
from .openai import OPENAI

logger = logging.getLogger("cortex.upstream")

REQUEST_HEADERS = {
    "Content-Type": "application/json",
    "Accept-Encoding": "identity",
    "User-Agent": "cortex",
}
MAX_ERROR_BODY = 64 * 1024
LARGE_BODY = 1024 * 1024  # aiohttp sends larger bodies from a stream, not raw bytes


class AiohttpBody:
    """An upstream response body read chunk by chunk, with transport errors mapped."""

    __slots__ = ("_content", "started_at")

    def __init__(self, response: aiohttp.ClientResponse, started_at: float) -> None:
        self._content = response.content
        self.started_at = started_at

    async def read(self) -> bytes:
        try:
            return await self._content.readany()
        except (aiohttp.ClientError, ConnectionError):
            raise UpstreamIncomplete(
                "the connection to the model server broke in the middle of the answer"
            ) from None


class HTTPBackend:
    """One upstream: its dialect (``kind``), base URL and optional API key.

    Paths are relative to the base URL: ``/api/chat`` for Ollama, and
    ``/chat/completions`` under an OpenAI base URL that ends in ``/v1``.
    """

    def __init__(
        self,
        kind: UpstreamKind,
        base_url: str,
        session: aiohttp.ClientSession,
        timeouts: Timeouts,
        api_key: str | None = None,
    ) -> None:
        self.wire: Wire = OPENAI if kind == "openai" else OLLAMA
        self.base_url = base_url
        parts = urlsplit(base_url)
        self.root_url = f"{parts.scheme}://{parts.netloc}"  # /metrics and /slots live here
        self._session = session
        self._timeouts = timeouts
        self._client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect)
        self._headers = dict(REQUEST_HEADERS)
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        first_byte: float | None = None,
        *,
        from_root: bool = False,
    ) -> AsyncIterator[AiohttpBody]:
        """Send a request; yield its body once the upstream answered with a success status.

        Leaving the block early (a client went away, a timeout) closes the
        upstream connection at once, which makes Ollama stop generating.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        url = (self.root_url if from_root else self.base_url) + path
        response = await self._send(method, url, body, first_byte or self._timeouts.first_byte)
        try:
            if response.status >= 300:
                raise await _status_error(response)
            yield AiohttpBody(response, started)
        finally:
            if response.content.at_eof():
                response.release()
            else:
                response.close()

    async def _send(
        self, method: str, url: str, body: bytes | None, first_byte: float
    ) -> aiohttp.ClientResponse:
        timeouts = self._timeouts
        try:
            async with asyncio.timeout(first_byte):
                return await self._session.request(
                    method,
                    url,
                    data=body if body is None or len(body) <= LARGE_BODY else io.BytesIO(body),
                    headers=self._with_request_id(),
                    allow_redirects=False,
                    timeout=self._client_timeout,
                )
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise ConnectTimeout(
                    f"timed out connecting to the model server after {timeouts.connect:g} s"
                ) from None
            raise FirstByteTimeout(
                f"the model server did not answer within {first_byte:g} s"
            ) from None
        except aiohttp.ClientConnectorDNSError:
            raise self._unreachable("its host name does not resolve") from None
        except aiohttp.ClientConnectorError as exc:
            reason = os.strerror(exc.os_error.errno) if exc.os_error.errno else "connection failed"
            raise self._unreachable(reason.lower()) from None
        except aiohttp.ServerDisconnectedError:
            raise self._unreachable("it closed the connection without answering") from None
        except aiohttp.ClientResponseError as exc:
            raise UpstreamProtocolError(
                f"the model server sent an invalid HTTP response ({exc.message})"
            ) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise self._unreachable(type(exc).__name__) from None

    def _with_request_id(self) -> dict[str, str]:
        record = observe.current.get()
        if record is None:
            return self._headers
        return {**self._headers, "X-Request-ID": record.id}

    def _unreachable(self, reason: str) -> UpstreamError:
        logger.warning("model server %s unreachable: %s", redact_url(self.base_url), reason)
        return UpstreamUnreachable(f"cannot reach the model server: {reason}")


async def _status_error(response: aiohttp.ClientResponse) -> UpstreamError:
    """Turn an upstream error status into an error that keeps its status and message."""
    status = response.status
    try:
        async with asyncio.timeout(5):
            raw = await _read_some(response.content, MAX_ERROR_BODY)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        raw = b""
    message = _error_message(raw) or f"the model server answered HTTP {status}"
    if status < 400:
        return UpstreamProtocolError(f"the model server answered with a redirect (HTTP {status})")
    return UpstreamStatus(message, status=status)


async def _read_some(content: aiohttp.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit and (chunk := await content.read(limit - size)):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _error_message(raw: bytes) -> str | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None
