"""OpenAI's Responses API as a ``Codec``, for clients only: no model server speaks it to
Córtex, so a Responses request is always translated."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ...asks import Call, Generation
from ...chat import ChatRequest
from ...errors import Dialect
from ...stream.contract import Reader, Writer
from ...stream.encode import SSE
from ..codec import StreamHead
from . import request
from .tools import BuiltinPolicy
from .writer import ResponsesWriter

HEAD = StreamHead(SSE.media_type, SSE.headers, ResponsesWriter.heartbeat, "responses-sse")


@dataclass(frozen=True, slots=True)
class ResponsesAsk(Generation):
    """A Responses request, with what the API layer resolved for it."""

    response_id: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # previous_response_id's items
    # stored items of other responses that the input's item_references name, by id
    referenced: dict[str, dict[str, Any]] = field(default_factory=dict)
    builtin_tools: BuiltinPolicy = "refuse"
    writers: list[ResponsesWriter] = field(default_factory=list)  # one an attempt, the last won

    @property
    def prompt(self) -> Any:
        """Codex's ``prompt_cache_key`` names its conversation: the router's affinity key."""
        key = self.payload.get("prompt_cache_key")
        if isinstance(key, str) and key:
            return [{"role": "system", "content": key}]
        items = self.payload.get("input")
        return [{"role": "user", "content": items}] if isinstance(items, str) else items

    @property
    def response(self) -> dict[str, Any] | None:
        """The finished response object, once an attempt wrote one."""
        return self.writers[-1].response if self.writers else None


class ResponsesCodec:
    name: Dialect = "responses"
    server = "OpenAI's Responses API"
    upstream = False

    def stream_head(self, ask: Generation) -> StreamHead:
        if not ask.stream:
            return HEAD
        # A failure before any attempt's writer began (a heartbeat sent the headers) is
        # still a whole stream: response.created, error, response.failed.
        response_id = ask.response_id if isinstance(ask, ResponsesAsk) else None
        return replace(HEAD, error=ResponsesWriter(ask.model, ask.payload, response_id).error)

    def passthrough(self, ask: Generation) -> Call:
        raise NotImplementedError("no model server speaks the Responses API to Córtex")

    def read_request(self, ask: Generation) -> ChatRequest:
        if isinstance(ask, ResponsesAsk):
            return request.chat_request(
                ask.payload, ask.history, referenced=ask.referenced, builtin_tools=ask.builtin_tools
            )
        return request.chat_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        return ()

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        response_id = ask.response_id if isinstance(ask, ResponsesAsk) else None
        writer = ResponsesWriter(ask.model, ask.payload, response_id or None)
        if isinstance(ask, ResponsesAsk):
            ask.writers.append(writer)
        return writer

    def upstream_call(self, chat: ChatRequest) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError("no model server speaks the Responses API to Córtex")

    def reader(self) -> Reader:
        raise NotImplementedError("no model server speaks the Responses API to Córtex")
