"""create_app(settings): the ASGI application, its routes, errors and lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, observe, web
from .access.hostguard import HostGuard, Refusal
from .api import anthropic as anthropic_api
from .api import ollama, ops
from .api import openai as openai_api
from .api import responses as responses_api
from .config import Settings
from .context import RequestContext, attach
from .errors import CortexError, Overloaded, error_response
from .gateway import Gateway
from .observe import RequestRecord, request_id
from .telemetry import Telemetry, telemetry_from_env

logger = logging.getLogger("cortex")


Handler = Callable[[Request], Awaitable[Response]]
API_PREFIXES = ("/api/", "/v1/")


class Pipeline:
    """The ASGI app: every HTTP request goes through one pipeline, then to its handler.

    In order: a record (request id, outcome, timings) for the access log and the
    metrics, in the request's context; while draining, a refusal of every API
    call; the API key and its limits; then the handler. The token-carrying
    endpoints go straight to theirs (FastAPI's router walk and middleware cost
    about 0.1 ms a request, measured, a fifth of what Córtex adds to the first
    token); everything else, the OpenAPI schema included, goes through FastAPI,
    which also runs the lifespan.
    """

    def __init__(
        self,
        app: FastAPI,
        routes: Mapping[str, Handler],
        settings: Settings,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self._telemetry = telemetry
        self._access_log = settings.access_log
        self._guard = HostGuard(settings.host, settings.allowed_hosts, settings.cors_origins)
        self._cors = _cors(self._dispatch, settings.cors_origins) if settings.cors_origins else None

    @property
    def state(self) -> State:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._dispatch(scope, receive, send)
            return
        checked = self._guard.check(scope)
        if isinstance(checked, Refusal):
            await checked(scope, receive, send)
        elif checked is not None and self._cors is not None and self._cors.allows(checked):
            await self._cors.app(scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":  # every GET route answers HEAD, as Ollama's do
            scope = {**scope, "method": "GET"}
            send = _headers_only(send)
        record = RequestRecord(request_id(scope["headers"]), scope["method"], scope["path"])
        made = RequestContext(record)
        if self._telemetry is not None:
            made.trace = self._telemetry.start(scope, _route(scope, self._routes))
        attach(scope, made)
        echo_id = (b"x-request-id", record.id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo_id]
            await send(message)

        gw: Gateway | None = getattr(self.app.state, "gateway", None)
        metrics = gw.metrics if gw is not None else None
        handler = self._routes.get(scope["path"]) if scope["method"] == "POST" else None
        if handler is not None and metrics is not None:
            metrics.active += 1
        try:
            refusal = await self._admit(gw, scope, made)
            if refusal is not None:
                record.outcome = "rejected"
                await error_response(refusal, scope["path"])(scope, receive, send_with_id)
            elif handler is not None:
                await self._stream(handler, scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if made.ticket is not None and gw is not None:
                await gw.access.finish(made.ticket, record)
            if handler is not None and metrics is not None:
                metrics.active -= 1
            ended = time.monotonic()
            if metrics is not None:
                metrics.observe(record, ended)
            if self._access_log:
                observe.log_access(record, ended)
            if made.trace is not None:
                made.trace.end(record, ended)
                made.trace = None  # it holds the scope, which holds this context

    async def _admit(
        self, gw: Gateway | None, scope: Scope, made: RequestContext
    ) -> CortexError | None:
        """Why the request is refused before its handler, if it is: a drain, or its key."""
        if gw is None:
            return None
        if gw.draining and scope["path"].startswith(API_PREFIXES):
            return Overloaded("Córtex is shutting down; send the request to another instance", 1)
        if not gw.access.on:
            return None
        try:
            made.ticket = await gw.access.admit(scope, made.record)
        except CortexError as exc:
            return exc
        return None

    async def _stream(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except CortexError as exc:
            response = error_response(exc, request.url.path)
        except Exception as exc:
            response = await _unexpected_error(request, exc)
        await response(scope, receive, send)


def _route(scope: Scope, routes: Mapping[str, Handler]) -> str | None:
    """The route template for the server span, where it is known before the handler runs:
    the answering routes are their own paths; FastAPI's others are not matched yet."""
    path: str = scope["path"]
    return path if path in routes else None


def _headers_only(send: Send) -> Send:
    async def send_head(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


def create_app(settings: Settings, started: Callable[[], None] | None = None) -> Pipeline:
    """The app; ``started`` runs once its gateway has started (the serving process's
    garbage-collector policy, ``gcpolicy.py``)."""
    telemetry = telemetry_from_env(os.environ)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await Gateway.start(settings)
        app.state.gateway = gw
        if telemetry is not None:
            telemetry.open()
        if started is not None:
            started()
        logger.info(
            "Córtex %s listening on http://%s:%s, %s",
            __version__,
            settings.host,
            settings.port,
            _serving(gw),
        )
        try:
            yield
        finally:
            await gw.close()
            if telemetry is not None:
                await asyncio.to_thread(telemetry.shutdown)  # flushes over HTTP

    app = FastAPI(
        title="Córtex",
        version=__version__,
        summary="A streaming gateway for local LLM servers",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.include_router(ollama.router)
    app.include_router(openai_api.router)
    app.include_router(anthropic_api.router)
    app.include_router(responses_api.router)
    app.include_router(ops.router)
    app.include_router(web.router)  # the chat page at / and its assets
    app.add_exception_handler(CortexError, _cortex_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    streaming = {
        "/api/chat": ollama.chat,
        "/api/generate": ollama.generate,
        "/v1/chat/completions": openai_api.chat_completions,
        "/v1/completions": openai_api.completions,
        "/v1/messages": anthropic_api.messages,
        "/v1/responses": responses_api.create_response,
    }
    return Pipeline(app, streaming, settings, telemetry)


@dataclass(frozen=True, slots=True)
class _Cors:
    app: ASGIApp  # the pipeline behind Starlette's CORS middleware
    allowed: re.Pattern[str]

    def allows(self, origin: bytes) -> bool:
        return self.allowed.fullmatch(origin.decode("latin-1")) is not None


def _cors(app: ASGIApp, origins: Sequence[str]) -> _Cors:
    """Browser pages from these origins may call the API (``*`` matches anything).

    A request from any other origin gets no CORS header at all, and its preflight
    goes to the app like any OPTIONS request (``405``).
    """
    pattern = "|".join(re.escape(origin).replace(r"\*", ".*") for origin in origins)
    cors = CORSMiddleware(
        app,
        allow_origin_regex=pattern,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=[
            "X-Request-ID",
            "X-Cortex-Backend",
            "X-Cortex-Queue-Ms",
            "X-Cortex-Queue-Position",
            "X-Cortex-Overhead-Ms",
            "Retry-After",
        ],
        max_age=600,
    )
    return _Cors(cors, re.compile(pattern))


def _serving(gw: Gateway) -> str:
    """The start-up line's account of what Córtex serves."""
    single = gw.single
    if single is not None:
        return single.backend.describe(None)
    return "relaying to " + ", ".join(m.backend.describe(m.name) for m in gw.router.members)


def _error(request: Request, message: str, status: int) -> Response:
    return error_response(CortexError(message, status=status), request.url.path)


async def _cortex_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CortexError)
    return error_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = _error(request, str(exc.detail).lower(), exc.status_code)
    response.headers.update(exc.headers or {})
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    return _error(request, "invalid request", 400)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s", request.url.path, exc_info=exc)
    return _error(request, "internal error in the gateway", 500)
