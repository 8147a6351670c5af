"""OpenAI's API for clients, in front of an OpenAI-compatible or an Ollama upstream.

Against an OpenAI-compatible upstream every call is relayed as is; against
Ollama, requests and answers are translated (see ``dialects/``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..asks import Embedding, Generation
from ..catalog import find_model, openai_list_body, openai_model
from ..context import context
from ..errors import ModelNotFound
from ..gateway import gateway
from ..stream.encode import SSE
from .body import read_request, request_schema
from .replies import json_reply, raw_json_reply
from .routed import (
    embedding,
    embedding_reply,
    lone_backends_answer,
    relay_response,
    visible_models,
)

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
    messages: list[ChatMessage] = Field(min_length=1)  # as OpenAI: at least one
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)  # as OpenAI: a limit of 0 is refused
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: (
        Literal["none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra"] | None
    ) = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class CompletionRequest(BaseModel):
    """OpenAI's legacy text completion (code completion, fill-in-the-middle with ``suffix``)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    prompt: str | list[str]
    suffix: str | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    best_of: int | None = None
    echo: bool | None = None
    logprobs: int | None = None


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]  # text, or token ids as the spec allows
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None


@router.post("/chat/completions", openapi_extra=request_schema(ChatCompletionRequest))
async def chat_completions(request: Request) -> Response:
    gw, raw, payload = await read_request(request, ChatCompletionRequest)
    ask = Generation(payload, raw, "openai", "chat", payload.get("stream") is True, SSE)
    return relay_response(gw, ask, context(request))


@router.post("/completions", openapi_extra=request_schema(CompletionRequest))
async def completions(request: Request) -> Response:
    gw, raw, payload = await read_request(request, CompletionRequest)
    ask = Generation(payload, raw, "openai", "completion", payload.get("stream") is True, SSE)
    return relay_response(gw, ask, context(request))


@router.get("/models")
async def list_models(request: Request) -> Response:
    gw = gateway(request)
    ctx = context(request)
    own = None if gw.aliases else await lone_backends_answer(gw, "openai", "/models", ctx)
    return own or raw_json_reply(visible_models(openai_list_body(await gw.models()), ctx))


@router.get("/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> Response:
    entry = find_model(await gateway(request).models(), model)
    allowed = context(request).visible()
    if entry is None or (allowed is not None and not allowed(entry.name)):
        raise ModelNotFound(f"The model `{model}` does not exist")
    return json_reply(openai_model(entry))


@router.post("/embeddings", openapi_extra=request_schema(EmbeddingsRequest))
async def embeddings(request: Request) -> Response:
    gw, raw, payload = await read_request(request, EmbeddingsRequest)
    ctx = context(request)
    return embedding_reply(await embedding(gw, Embedding(payload, raw, "openai"), ctx), ctx)
