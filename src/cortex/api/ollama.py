"""Ollama's API for clients, in front of an Ollama or an OpenAI-compatible upstream.

Against an Ollama upstream every call is relayed byte for byte; against an
OpenAI one, requests and answers are translated (see ``dialects/``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from .. import __version__
from ..catalog import tags_body
from ..config import UpstreamKind
from ..dialects import ollama as ollama_wire
from ..dialects import openai as openai_wire
from ..errors import BadRequest, ModelNotFound
from ..gateway import Gateway, gateway
from ..routing import Lease
from ..stream.encode import NDJSON, SSE, wants_sse
from ..stream.passthrough import OllamaPassthrough
from ..stream.translate import OllamaWriter, OpenAIReader, Translate
from .body import read_json_object, request_schema, validate
from .relaying import (
    Planned,
    embedding_reply,
    exchange,
    lone_backends_answer,
    parse_json,
    relay_response,
    visible_models,
)
from .replies import json_reply, raw_json_reply

router = APIRouter(tags=["Ollama"])


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


class GenerateRequest(BaseModel):
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


async def _read(
    request: Request, model: type[BaseModel]
) -> tuple[Gateway, bytes | None, dict[str, Any]]:
    """The gateway, the raw body (None once changed) and the payload with its model set."""
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings)
    validate(model, payload)
    if not payload.get("model"):
        payload["model"] = await gw.default_model.get()
        return gw, None, payload
    return gw, raw, payload


@router.post("/api/chat", openapi_extra=request_schema(ChatRequest))
async def chat(request: Request) -> Response:
    gw, raw, payload = await _read(request, ChatRequest)
    return _generation(gw, request, raw, payload, "chat")


@router.post("/api/generate", openapi_extra=request_schema(GenerateRequest))
async def generate(request: Request) -> Response:
    gw, raw, payload = await _read(request, GenerateRequest)
    return _generation(gw, request, raw, payload, "generate")


def _generation(
    gw: Gateway, request: Request, raw: bytes | None, payload: dict[str, Any], shape: str
) -> Response:
    stream = payload.get("stream") is not False
    framing = SSE if wants_sse(request.headers.get("accept")) else NDJSON
    model = payload["model"]
    empty = not (payload.get("messages") if shape == "chat" else payload.get("prompt"))
    if empty and all(m.backend.kind != "ollama" for m in gw.router.members):
        return _loaded(model, shape)

    def plan(kind: UpstreamKind) -> Planned:
        if kind == "ollama":
            return f"/api/{shape}", raw or payload, OllamaPassthrough(framing) if stream else None
        if shape == "chat":
            chat_request = ollama_wire.chat_request(payload)
        else:
            chat_request = ollama_wire.generate_request(payload)
        path = "/completions" if chat_request.raw_prompt is not None else "/chat/completions"
        writer = OllamaWriter(model, shape, framing)
        translator = Translate(OpenAIReader(), writer, aggregate=not stream)
        return path, openai_wire.request_body(chat_request), translator

    return relay_response(
        gw,
        model,
        payload.get("messages"),
        plan,
        streaming=stream,
        media_type=framing.media_type,
        headers=framing.headers,
        dialect="ollama",
    )


def _loaded(model: str, shape: str) -> Response:
    """Ollama's answer to an empty request, which only loads the model."""
    answer: dict[str, Any] = {"model": model, "created_at": ollama_wire.created_at()}
    if shape == "chat":
        answer["message"] = {"role": "assistant", "content": ""}
    else:
        answer["response"] = ""
    answer.update(done_reason="load", done=True)
    return json_reply(answer)


@router.post("/api/embed", openapi_extra=request_schema(EmbedRequest))
async def embed(request: Request) -> Response:
    gw, raw, payload = await _read(request, EmbedRequest)

    async def call(lease: Lease) -> bytes:
        if lease.backend.kind == "ollama":
            return await exchange(gw, lease, "/api/embed", raw or payload)
        vectors, prompt_tokens = await _openai_embeddings(gw, lease, payload, payload["input"])
        answer = {"model": payload["model"], "embeddings": vectors}
        if prompt_tokens:
            answer["prompt_eval_count"] = prompt_tokens
        return orjson.dumps(answer)

    return embedding_reply(await gw.with_backend(payload["model"], call))


@router.post("/api/embeddings", openapi_extra=request_schema(LegacyEmbeddingsRequest))
async def legacy_embeddings(request: Request) -> Response:
    gw, raw, payload = await _read(request, LegacyEmbeddingsRequest)

    async def call(lease: Lease) -> bytes:
        if lease.backend.kind == "ollama":
            return await exchange(gw, lease, "/api/embeddings", raw or payload)
        vectors, _ = await _openai_embeddings(gw, lease, payload, payload["prompt"])
        return orjson.dumps({"embedding": vectors[0] if vectors else []})

    return raw_json_reply(await gw.with_backend(payload["model"], call))  # reports no tokens


async def _openai_embeddings(
    gw: Gateway, lease: Lease, payload: dict[str, Any], text: str | list[str]
) -> tuple[list[Any], int]:
    body: dict[str, Any] = {"model": payload["model"], "input": text, "encoding_format": "float"}
    if payload.get("dimensions"):
        body["dimensions"] = payload["dimensions"]
    answer = parse_json(await exchange(gw, lease, "/embeddings", body))
    data = sorted(answer.get("data") or [], key=lambda item: item.get("index", 0))
    usage = answer.get("usage") or {}
    return [item.get("embedding") for item in data], int(usage.get("prompt_tokens") or 0)


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    gw = gateway(request)
    own = await lone_backends_answer(gw, "ollama", "/api/tags")
    return own or raw_json_reply(visible_models(tags_body(await gw.models())))


@router.get("/api/version")
async def version(request: Request) -> Response:
    own = await lone_backends_answer(gateway(request), "ollama", "/api/version")
    return own or json_reply({"version": __version__})


@router.get("/api/ps")
async def running(request: Request) -> Response:
    """The models loaded on every Ollama backend (an OpenAI-compatible one does not say)."""
    gw = gateway(request)
    members = [m for m in gw.router.members if m.backend.kind == "ollama"]
    if len(members) == 1 and gw.single is not None:
        return raw_json_reply(visible_models(await gw.fetch(members[0], "/api/ps")))
    answers = await asyncio.gather(
        *(gw.fetch(m, "/api/ps") for m in members), return_exceptions=True
    )
    loaded = [
        entry
        for answer in answers
        if isinstance(answer, bytes)
        for entry in (parse_json(answer).get("models") or [])
    ]
    return raw_json_reply(visible_models(orjson.dumps({"models": loaded})))


@router.post("/api/show", openapi_extra=request_schema(ShowRequest))
async def show(request: Request) -> Response:
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings)
    name = validate(ShowRequest, payload).model or payload.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("invalid request: model: Field required")

    async def call(lease: Lease) -> bytes:
        if lease.backend.kind == "ollama":
            return await exchange(gw, lease, "/api/show", raw)
        entry = next((e for e in await gw.models() if e.name == name), None)
        if entry is None:
            raise ModelNotFound(f'model "{name}" not found')
        return orjson.dumps(
            {
                "modelfile": "",
                "parameters": "",
                "template": "",
                "details": orjson.loads(tags_body([entry]))["models"][0]["details"],
                "model_info": {},
                "capabilities": ["completion"],
            }
        )

    return raw_json_reply(await gw.with_backend(name, call))
