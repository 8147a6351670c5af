"""create_app(settings): the ASGI application, its routes, errors and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from . import __version__, web
from .api import ollama, ops
from .api import openai as openai_api
from .api.replies import raw_json_reply
from .backends.local import LocalBackend
from .config import Settings, redact_url
from .errors import CortexError, ollama_error_body, openai_error_body
from .gateway import Gateway

logger = logging.getLogger("cortex")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await Gateway.start(settings)
        app.state.gateway = gw
        logger.info(
            "Córtex %s listening on http://%s:%s, %s",
            __version__,
            settings.host,
            settings.port,
            _serving(settings, gw),
        )
        try:
            yield
        finally:
            await gw.close()

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
    app.include_router(ops.router)
    app.include_router(web.router)  # the chat page at / and its assets
    app.add_exception_handler(CortexError, _cortex_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def _serving(settings: Settings, gw: Gateway) -> str:
    if isinstance(gw.backend, LocalBackend):
        return f"serving the embedded model {gw.backend.name}"
    dialect = "Ollama" if settings.kind == "ollama" else "an OpenAI-compatible server"
    return f"relaying to {dialect} at {redact_url(settings.upstream)}"


def _error(request: Request, message: str, status: int) -> Response:
    """The one place an error becomes a response: in the dialect of the path called."""
    render = openai_error_body if request.url.path.startswith("/v1/") else ollama_error_body
    return raw_json_reply(render(message, status), status)


async def _cortex_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CortexError)
    return _error(request, exc.message, exc.status)


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
