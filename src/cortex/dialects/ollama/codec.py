"""Ollama's API as a ``Codec``."""

from __future__ import annotations

from typing import Any

from ...asks import Call, Generation
from ...chat import ChatRequest
from ...errors import Dialect
from ...stream.contract import Reader, Writer
from ..codec import StreamHead
from . import request
from .passthrough import OllamaPassthrough
from .reader import OllamaReader
from .writer import OllamaWriter


class OllamaCodec:
    name: Dialect = "ollama"
    server = "Ollama's API"
    upstream = True

    def stream_head(self, ask: Generation) -> StreamHead:
        framing = ask.framing
        return StreamHead(framing.media_type, framing.headers, framing.heartbeat, framing.name)

    def passthrough(self, ask: Generation) -> Call:
        relay = OllamaPassthrough(ask.framing) if ask.stream else None
        return Call(f"/api/{ask.shape}", ask.body(), relay)

    def read_request(self, ask: Generation) -> ChatRequest:
        if ask.shape == "chat":
            return request.chat_request(ask.payload)
        return request.generate_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        return ("suffix",) if ask.shape == "generate" else ()

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        return OllamaWriter(ask.model, "chat" if ask.shape == "chat" else "generate", ask.framing)

    def upstream_call(self, chat: ChatRequest) -> tuple[str, dict[str, Any]]:
        if chat.raw_prompt is not None:
            return "/api/generate", request.generate_body(chat)
        return "/api/chat", request.request_body(chat)

    def reader(self) -> Reader:
        return OllamaReader()
