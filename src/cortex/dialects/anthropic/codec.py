"""Anthropic's Messages API as a ``Codec``."""

from __future__ import annotations

from typing import Any

from ...asks import Call, Generation
from ...chat import ChatRequest
from ...errors import Dialect
from ...stream.contract import Reader, Writer
from ...stream.encode import SSE
from ..codec import StreamHead
from . import request, upstream
from .passthrough import MessagesPassthrough
from .reader import MessagesReader
from .tokens import estimate_tokens
from .writer import PING, MessagesWriter

HEAD = StreamHead(SSE.media_type, SSE.headers, PING, "anthropic-sse")


class AnthropicCodec:
    name: Dialect = "anthropic"
    server = "Anthropic's Messages API"
    upstream = True

    def stream_head(self, ask: Generation) -> StreamHead:
        return HEAD

    def passthrough(self, ask: Generation) -> Call:
        return Call("/messages", ask.body(), MessagesPassthrough() if ask.stream else None)

    def read_request(self, ask: Generation) -> ChatRequest:
        return request.chat_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        return ()

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        taken = (call.id for m in request.messages for call in m.tool_calls if call.id)
        return MessagesWriter(
            ask.model, input_tokens_hint=estimate_tokens(request), taken_ids=taken
        )

    def upstream_call(self, chat: ChatRequest) -> tuple[str, dict[str, Any]]:
        return "/messages", upstream.request_body(chat)

    def reader(self) -> Reader:
        return MessagesReader()
