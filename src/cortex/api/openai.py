"""OpenAI's API for clients, in front of an OpenAI-compatible or an Ollama upstream.

Against an OpenAI-compatible upstream every call is relayed as is; against
Ollama, requests and answers are translated (see ``dialects/``).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from ..access import model_filter
from ..catalog import openai_list_body, openai_model
from ..config import UpstreamKind
from ..dialects import ollama as ollama_wire
from ..dialects import openai as openai_wire
from ..errors import BadRequest, ModelNotFound
from ..gateway import gateway
from ..routing import Lease
from ..stream.encode import SSE
from ..stream.passthrough import OpenAIPassthrough
from ..stream.translate import OllamaReader, OpenAIWriter, Translate
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

router = APIRouter(prefix="/v1", tags=["OpenAI"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request; fields Córtex does not read go on untouched to OpenAI upstreams."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    messages: list[ChatMessage]
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]  # text, or token ids as the spec allows
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None


@router.post("/chat/completions", openapi_extra=request_schema(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings)
    validate(ChatCompletionRequest, payload)
    body: bytes | dict[str, Any] = raw
    if not payload.get("model"):
        payload["model"] = await gw.default_model.get()
        body = payload
    stream = payload.get("stream") is True
    model = payload["model"]

    def plan(kind: UpstreamKind) -> Planned:
        if kind == "openai":
            return "/chat/completions", body, OpenAIPassthrough() if stream else None
        chat_request = openai_wire.chat_request(payload)
        writer = OpenAIWriter(model, chat_request.include_usage)
        translator = Translate(OllamaReader(), writer, aggregate=not stream)
        return "/api/chat", ollama_wire.request_body(chat_request), translator

    return relay_response(
        gw,
        model,
        payload.get("messages"),
        plan,
        streaming=stream,
        media_type=SSE.media_type,
        headers=SSE.headers,
        dialect="openai",
    )


@router.get("/models")
async def list_models(request: Request) -> Response:
    gw = gateway(request)
    own = await lone_backends_answer(gw, "openai", "/models")
    return own or raw_json_reply(visible_models(openai_list_body(await gw.models())))


@router.get("/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> Response:
    tagged = model if ":" in model else f"{model}:latest"  # as Ollama, the tag defaults to latest
    models = await gateway(request).models()
    entry = next((e for e in models if e.name == model), None) or next(
        (e for e in models if e.name == tagged), None
    )
    allowed = model_filter()
    if entry is None or (allowed is not None and not allowed(entry.name)):
        raise ModelNotFound(f"The model `{model}` does not exist")
    return json_reply(openai_model(entry))


@router.post("/embeddings", openapi_extra=request_schema(EmbeddingsRequest))
async def embeddings(request: Request) -> Response:
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings)
    parsed = validate(EmbeddingsRequest, payload)
    if not payload.get("model"):
        payload["model"] = await gw.default_model.get()

    async def call(lease: Lease) -> bytes:
        if lease.backend.kind == "openai":
            return await exchange(gw, lease, "/embeddings", raw if parsed.model else payload)
        if _is_tokens(parsed.input):
            raise BadRequest(
                "this model's server is Ollama, whose embeddings take text, not token ids: "
                "send input as a string or a list of strings"
            )
        body: dict[str, Any] = {"model": payload["model"], "input": parsed.input}
        if parsed.dimensions:
            body["dimensions"] = parsed.dimensions
        answer = parse_json(await exchange(gw, lease, "/api/embed", body))
        return orjson.dumps(_openai_embeddings(payload["model"], answer, parsed.encoding_format))

    return embedding_reply(await gw.with_backend(payload["model"], call))


def _is_tokens(value: str | list[str] | list[int] | list[list[int]]) -> bool:
    return isinstance(value, list) and any(not isinstance(item, str) for item in value)


def _openai_embeddings(model: str, answer: Any, encoding: str | None) -> dict[str, Any]:
    vectors = answer.get("embeddings") or []
    encode = openai_wire.embedding_base64 if encoding == "base64" else list
    prompt_tokens = int(answer.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector)}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
