"""Ollama's API for clients, in front of an Ollama or an OpenAI-compatible upstream.

Against an Ollama upstream every call is relayed byte for byte; against an
OpenAI one, requests and answers are translated (see ``dialects/``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from .. import __version__
from ..asks import Embedding, Generation
from ..backends.base import upstream_json
from ..catalog import tags_body
from ..context import context
from ..dialects.ollama.writer import created_at
from ..errors import BadRequest
from ..gateway import Gateway, gateway
from ..routing import Lease
from ..stream.encode import NDJSON, SSE, wants_sse
from .body import read_json_object, read_request, request_schema, validate
from .replies import json_reply, raw_json_reply
from .routed import (
    answered,
    embedding,
    embedding_reply,
    lone_backends_answer,
    relay_response,
    visible_models,
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
    messages: list[Message]
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


class ShowRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    name: str | None = None


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
    framing = SSE if wants_sse(request.headers.get("accept")) else NDJSON
    empty = not (payload.get("messages") if shape == "chat" else payload.get("prompt"))
    if empty and not any(m.backend.wire.speaks("ollama") for m in gw.router.members):
        return _loaded(payload["model"], shape, unload=_zero(payload.get("keep_alive")))
    stream = payload.get("stream") is not False
    ask = Generation(payload, raw, "ollama", shape, stream, framing)
    return relay_response(gw, ask, context(request))


def _zero(keep_alive: Any) -> bool:
    """A ``keep_alive`` of no time at all (``0``, ``"0"``, ``"0s"``, ``"0m"``…): unload."""
    if isinstance(keep_alive, str):
        number = keep_alive.strip().rstrip("smh")
        return number.replace(".", "", 1).isdigit() and float(number) == 0
    return type(keep_alive) in (int, float) and keep_alive == 0


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


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    gw, ctx = gateway(request), context(request)
    own = None if gw.aliases else await lone_backends_answer(gw, "ollama", "/api/tags", ctx)
    return own or raw_json_reply(visible_models(tags_body(await gw.models()), ctx))


@router.get("/api/version")
async def version(request: Request) -> Response:
    own = await lone_backends_answer(gateway(request), "ollama", "/api/version", context(request))
    return own or json_reply({"version": __version__})


@router.get("/api/ps")
async def running(request: Request) -> Response:
    """The models loaded on every Ollama backend (an OpenAI-compatible one does not say)."""
    gw, ctx = gateway(request), context(request)
    members = [m for m in gw.router.members if m.backend.wire.speaks("ollama")]
    if len(members) == 1 and gw.single is not None:
        return raw_json_reply(visible_models(await gw.fetch(members[0], "/api/ps"), ctx))
    answers = await asyncio.gather(
        *(gw.fetch(m, "/api/ps") for m in members), return_exceptions=True
    )
    loaded = [
        entry
        for answer in answers
        if isinstance(answer, bytes)
        for entry in (upstream_json(answer).get("models") or [])
    ]
    return raw_json_reply(visible_models(orjson.dumps({"models": loaded}), ctx))


@router.post("/api/show", openapi_extra=request_schema(ShowRequest))
async def show(request: Request) -> Response:
    gw, ctx = gateway(request), context(request)
    raw, payload = await read_json_object(request, gw.settings)
    name = validate(ShowRequest, payload).model or payload.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("invalid request: model: Field required")
    if (target := gw.aliases.resolve(name)) is not None:
        ctx.alias, name = name, target
        raw = orjson.dumps({**payload, "model": target, "name": target})

    async def call(lease: Lease) -> bytes:
        models = lease.member.models
        shown = lease.backend.wire.show(
            name, raw, models if models is not None else await gw.models()
        )
        return shown if isinstance(shown, bytes) else await answered(gw, lease, shown, ctx)

    return raw_json_reply(await gw.with_backend(name, call, ctx))
