"""Ollama's API: /api/chat relayed as a live stream, metadata endpoints relayed as is."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from ..backends.base import UpstreamBody
from ..errors import ollama_error_body
from ..gateway import Gateway, gateway
from ..stream.encode import NDJSON, SSE, wants_sse
from ..stream.relay import read_whole, relay_lines
from ..stream.response import RelayResponse
from .body import read_json_object, validate
from .replies import JSON_MEDIA_TYPE, raw_json_reply

router = APIRouter()


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: str
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """Ollama's chat request; fields Córtex does not read are passed on untouched."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    messages: list[Message]
    stream: bool | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    keep_alive: str | int | float | None = None
    think: bool | str | None = None


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings.max_body_bytes)
    chat_request = validate(ChatRequest, payload)
    if not chat_request.model:
        payload["model"] = await gw.default_model.get()
        raw = orjson.dumps(payload)
    return _relay(gw, "/api/chat", raw, stream=chat_request.stream is not False, request=request)


def _relay(gw: Gateway, path: str, body: bytes, *, stream: bool, request: Request) -> Response:
    def open_upstream() -> AbstractAsyncContextManager[UpstreamBody]:
        return gw.backend.open("POST", path, body)

    if not stream:
        return RelayResponse(
            open_upstream,
            lambda upstream: _once(read_whole(upstream, gw.limits)),
            media_type=JSON_MEDIA_TYPE,
            error_body=_error_body,
            streaming=False,
        )
    framing = SSE if wants_sse(request.headers.get("accept")) else NDJSON
    return RelayResponse(
        open_upstream,
        lambda upstream: relay_lines(upstream, framing, gw.limits),
        media_type=framing.media_type,
        headers=framing.headers,
        error_body=_error_body,
        error_frame=framing.error,
    )


async def _once(whole: Awaitable[bytes]) -> AsyncGenerator[bytes, None]:
    yield await whole


def _error_body(message: str) -> bytes:
    return ollama_error_body(message)


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    return raw_json_reply(await gateway(request).fetch("/api/tags"))


@router.get("/api/version")
async def version(request: Request) -> Response:
    return raw_json_reply(await gateway(request).fetch("/api/version"))
