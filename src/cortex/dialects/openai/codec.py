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
from .completion_writer import CompletionWriter
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
        path = "/completions" if ask.shape == "completion" else "/chat/completions"
        return Call(path, ask.body(), OpenAIPassthrough() if ask.stream else None)

    def read_request(self, ask: Generation) -> ChatRequest:
        if ask.shape == "completion":
            return request.completion_request(ask.payload)
        return request.chat_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        # A completion's logprobs are a shape of their own (tokens, token_logprobs…).
        return ("logprobs",) if ask.shape == "completion" else ()

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        if ask.shape == "completion":
            return CompletionWriter(ask.model, request.include_usage)
        return OpenAIWriter(ask.model, request.include_usage)

    def upstream_call(self, chat: ChatRequest) -> tuple[str, dict[str, Any]]:
        path = "/completions" if chat.raw_prompt is not None else "/chat/completions"
        return path, request.request_body(chat)

    def reader(self) -> Reader:
        return OpenAIReader()
