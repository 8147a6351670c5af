"""Ollama's API for clients, in front of an Ollama or an OpenAI-compatible upstream.

Against an Ollama upstream every call is relayed byte for byte; against an
OpenAI one, requests and answers are translated (see ``dialects/``). Discovery
(version, tags, ps, show) is in ``ollama_models.py``, model management in
``ollama_admin.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from ..asks import Embedding, Generation
from ..backends.base import Wire
from ..context import context
from ..dialects.ollama.writer import created_at
from ..gateway import Gateway
from ..keepalive import requested
from ..stream.encode import NDJSON, SSE, wants_sse
from . import ollama_admin, ollama_models
from .body import read_request, request_schema
from .replies import json_reply, raw_json_reply
from .routed import (
    embedding,
    embedding_reply,
    relay_response,
)

router = APIRouter(tags=["Ollama"])
Shape = Literal["chat", "generate"]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: str
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatBody(BaseModel):
    """Ollama's chat request; fields Córtex does not read are passed on untouched."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    messages: list[Message] | None = None  # none at all: load the model, as Go's client does
    stream: bool | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    keep_alive: str | int | float | None = None
    think: bool | str | None = None


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    prompt: str | None = None
    system: str | None = None
    images: list[str] | None = None
    stream: bool | None = None
    raw: bool | None = None
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | int | float | None = None


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    input: str | list[str]
    dimensions: int | None = None


class LegacyEmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    prompt: str


@router.post("/api/chat", openapi_extra=request_schema(ChatBody))
async def chat(request: Request) -> Response:
    gw, raw, payload = await read_request(request, ChatBody)
    return _generation(gw, request, raw, payload, "chat")


@router.post("/api/generate", openapi_extra=request_schema(GenerateBody))
async def generate(request: Request) -> Response:
    gw, raw, payload = await read_request(request, GenerateBody)
    return _generation(gw, request, raw, payload, "generate")


def _generation(
    gw: Gateway, request: Request, raw: bytes | None, payload: dict[str, Any], shape: Shape
) -> Response:
    framing = SSE if wants_sse(request.scope["headers"]) else NDJSON
    empty = not (payload.get("messages") if shape == "chat" else payload.get("prompt"))
    if empty and not any(_loads_models(m.backend.wire) for m in gw.router.members):
        return _loaded(payload["model"], shape, unload=requested(payload.get("keep_alive")) == 0)
    stream = payload.get("stream") is not False and not empty  # a load's answer is one object
    ask = Generation(payload, raw, "ollama", shape, stream, framing)
    return relay_response(gw, ask, context(request))


def _loads_models(wire: Wire) -> bool:
    """The server answers Ollama's load and unload requests itself (Ollama does)."""
    return wire.speaks("ollama") and not wire.streams_only


def _loaded(model: str, shape: Shape, *, unload: bool) -> Response:
    """Ollama's answer to an empty request, which only loads (or unloads) the model."""
    answer: dict[str, Any] = {"model": model, "created_at": created_at()}
    if shape == "chat":
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    answer.update(done_reason="unload" if unload else "load", done=True)
    return json_reply(answer)


@router.post("/api/embed", openapi_extra=request_schema(EmbedRequest))
async def embed(request: Request) -> Response:
    gw, raw, payload = await read_request(request, EmbedRequest)
    ctx = context(request)
    return embedding_reply(await embedding(gw, Embedding(payload, raw, "ollama-embed"), ctx), ctx)


@router.post("/api/embeddings", openapi_extra=request_schema(LegacyEmbeddingsRequest))
async def legacy_embeddings(request: Request) -> Response:
    gw, raw, payload = await read_request(request, LegacyEmbeddingsRequest)
    answer = await embedding(gw, Embedding(payload, raw, "ollama-embeddings"), context(request))
    return raw_json_reply(answer)  # the legacy answer reports no tokens


router.include_router(ollama_models.router)
router.include_router(ollama_admin.router)
