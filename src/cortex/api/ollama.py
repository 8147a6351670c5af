"""Ollama's API for clients, in front of an Ollama or an OpenAI-compatible upstream.

Against an Ollama upstream every call is relayed byte for byte; against an
OpenAI one, requests and answers are translated (see ``dialects/``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from .. import __version__
from ..catalog import tags_body
from ..dialects import ollama as ollama_wire
from ..dialects import openai as openai_wire
from ..errors import ModelNotFound, ollama_error_body
from ..gateway import Gateway, gateway
from ..stream.encode import NDJSON, SSE, wants_sse
from ..stream.passthrough import OllamaPassthrough
from ..stream.translate import OllamaWriter, OpenAIReader, Translate
from .body import read_json_object, request_schema, validate
from .relaying import exchange, relay_response
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
    raw, payload = await read_json_object(request, gw.settings.max_body_bytes)
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
    common: dict[str, Any] = {
        "streaming": stream,
        "media_type": framing.media_type,
        "headers": framing.headers,
        "error_body": ollama_error_body,
    }
    if gw.backend.kind == "ollama":
        passthrough = OllamaPassthrough(framing) if stream else None
        return relay_response(gw, f"/api/{shape}", raw or payload, passthrough, **common)
    if shape == "chat":
        chat_request = ollama_wire.chat_request(payload)
        if not chat_request.messages:
            return _loaded(payload["model"], shape)
    else:
        chat_request = ollama_wire.generate_request(payload)
        if not payload.get("prompt"):
            return _loaded(payload["model"], shape)
    path = "/completions" if chat_request.raw_prompt is not None else "/chat/completions"
    writer = OllamaWriter(payload["model"], shape, framing)
    translator = Translate(OpenAIReader(), writer, aggregate=not stream)
    return relay_response(gw, path, openai_wire.request_body(chat_request), translator, **common)


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
    if gw.backend.kind == "ollama":
        return raw_json_reply(await _relay_json(gw, "/api/embed", raw, payload))
    vectors, prompt_tokens = await _openai_embeddings(gw, payload, payload["input"])
    return json_reply(
        {
            "model": payload["model"],
            "embeddings": vectors,
            "total_duration": 0,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
        }
    )


@router.post("/api/embeddings", openapi_extra=request_schema(LegacyEmbeddingsRequest))
async def legacy_embeddings(request: Request) -> Response:
    gw, raw, payload = await _read(request, LegacyEmbeddingsRequest)
    if gw.backend.kind == "ollama":
        return raw_json_reply(await _relay_json(gw, "/api/embeddings", raw, payload))
    vectors, _ = await _openai_embeddings(gw, payload, payload["prompt"])
    return json_reply({"embedding": vectors[0]})


async def _openai_embeddings(
    gw: Gateway, payload: dict[str, Any], text: str | list[str]
) -> tuple[list[Any], int]:
    body: dict[str, Any] = {"model": payload["model"], "input": text, "encoding_format": "float"}
    if payload.get("dimensions"):
        body["dimensions"] = payload["dimensions"]
    answer = await exchange(gw, "/embeddings", body)
    data = sorted(answer.get("data") or [], key=lambda item: item.get("index", 0))
    usage = answer.get("usage") or {}
    return [item.get("embedding") for item in data], int(usage.get("prompt_tokens") or 0)


async def _relay_json(gw: Gateway, path: str, raw: bytes | None, payload: dict[str, Any]) -> bytes:
    return (
        orjson.dumps(await exchange(gw, path, payload)) if raw is None else await gw.post(path, raw)
    )


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    gw = gateway(request)
    if gw.backend.kind == "ollama":
        return raw_json_reply(await gw.fetch("/api/tags"))
    return raw_json_reply(tags_body(await gw.models()))


@router.get("/api/version")
async def version(request: Request) -> Response:
    gw = gateway(request)
    if gw.backend.kind == "ollama":
        return raw_json_reply(await gw.fetch("/api/version"))
    return json_reply({"version": __version__})


@router.get("/api/ps")
async def running(request: Request) -> Response:
    gw = gateway(request)
    if gw.backend.kind == "ollama":
        return raw_json_reply(await gw.fetch("/api/ps"))
    return json_reply({"models": []})  # an OpenAI-compatible server does not say what is loaded


@router.post("/api/show", openapi_extra=request_schema(ShowRequest))
async def show(request: Request) -> Response:
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings.max_body_bytes)
    name = validate(ShowRequest, payload).model or payload.get("name")
    if gw.backend.kind == "ollama":
        return raw_json_reply(await gw.post("/api/show", raw))
    entry = next((e for e in await gw.models() if e.name == name), None)
    if entry is None:
        raise ModelNotFound(f'model "{name}" not found')
    return json_reply(
        {
            "modelfile": "",
            "parameters": "",
            "template": "",
            "details": orjson.loads(tags_body([entry]))["models"][0]["details"],
            "model_info": {},
            "capabilities": ["completion"],
        }
    )
