"""OpenAI's chat completions as a ``Codec``."""

from __future__ import annotations

from typing import Any

from ...asks import Call, Generation
from ...chat import ChatRequest
from ...errors import Dialect
from ...stream.contract import Reader, Writer
from ...stream.encode import SSE
from ..codec import StreamHead
from . import request
from .passthrough import OpenAIPassthrough
from .reader import OpenAIReader
from .writer import OpenAIWriter

HEAD = StreamHead(SSE.media_type, SSE.headers, SSE.heartbeat, "openai-sse")


class OpenAICodec:
    name: Dialect = "openai"
    server = "OpenAI's API"
    upstream = True

    def stream_head(self, ask: Generation) -> StreamHead:
        return HEAD

    def passthrough(self, ask: Generation) -> Call:
        return Call("/chat/completions", ask.body(), OpenAIPassthrough() if ask.stream else None)

    def read_request(self, ask: Generation) -> ChatRequest:
        return request.chat_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        return ()

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        return OpenAIWriter(ask.model, request.include_usage)

    def upstream_call(self, chat: ChatRequest) -> tuple[str, dict[str, Any]]:
        path = "/completions" if chat.raw_prompt is not None else "/chat/completions"
        return path, request.request_body(chat)

    def reader(self) -> Reader:
        return OpenAIReader()
