"""Anthropic's Messages API for clients (Claude Code, the ``anthropic`` SDKs), in front of
any model server: relayed as it is to one that speaks Messages, translated for the others."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..asks import Generation
from ..context import context
from ..dialects.anthropic.request import count_request
from ..dialects.anthropic.schema import CountTokensRequest, MessagesRequest
from ..stream.encode import SSE
from .body import read_request, request_schema
from .counting import count_tokens
from .replies import json_reply
from .routed import relay_response

router = APIRouter(prefix="/v1", tags=["Anthropic"])


@router.post("/messages", openapi_extra=request_schema(MessagesRequest))
async def messages(request: Request) -> Response:
    gw, raw, payload = await read_request(request, MessagesRequest)
    ask = Generation(payload, raw, "anthropic", "chat", payload.get("stream") is True, SSE)
    return relay_response(gw, ask, context(request))


@router.post("/messages/count_tokens", openapi_extra=request_schema(CountTokensRequest))
async def messages_count_tokens(request: Request) -> Response:
    """The prompt's tokens by the model server's own tokenizer where it has one (llama.cpp's
    and vLLM's ``/tokenize``), else an estimate; ``X-Cortex-Token-Count`` says which."""
    gw, _, payload = await read_request(request, CountTokensRequest)
    counted, how = await count_tokens(gw, count_request(payload), context(request))
    reply = json_reply({"input_tokens": counted})
    reply.headers["x-cortex-token-count"] = how
    return reply
