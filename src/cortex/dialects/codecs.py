"""Every dialect's codec, and the one rule that pairs a client's with an upstream's.

Same dialect on both sides: the codec's passthrough forwards the upstream's
bytes. Otherwise: the client's codec reads the request into a ``ChatRequest``,
the upstream's writes it in its own dialect, and the answer comes back through
the upstream's reader and the client's writer (``stream.translate.Translate``).
A new dialect is one ``Codec`` here; nothing above ``backends/`` changes.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from ..asks import Call, Generation
from ..chat import ChatRequest
from ..errors import BadRequest, Dialect
from ..stream.translate import Translate
from .codec import Reader, Writer
from .ollama import request as ollama_request
from .ollama.passthrough import OllamaPassthrough
from .ollama.reader import OllamaReader
from .ollama.writer import OllamaWriter
from .openai import request as openai_request
from .openai.passthrough import OpenAIPassthrough
from .openai.reader import OpenAIReader
from .openai.writer import OpenAIWriter


class Codec(Protocol):
    name: Dialect
    server: str  # how an error names a server that speaks it: "Ollama's"

    def passthrough(self, ask: Generation) -> Call:
        """The call for a client of this same dialect: its body, relayed as it is."""
        ...

    def read_request(self, ask: Generation) -> ChatRequest: ...

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        """Fields of the client's request that do not survive a translation."""
        ...

    def writer(self, ask: Generation, request: ChatRequest) -> Writer: ...

    def upstream_call(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        """The path and body of ``request`` for a server of this dialect (always streamed)."""
        ...

    def reader(self) -> Reader: ...


class OllamaCodec:
    name: Dialect = "ollama"
    server = "Ollama's"

    def passthrough(self, ask: Generation) -> Call:
        relay = OllamaPassthrough(ask.framing) if ask.stream else None
        return Call(f"/api/{ask.shape}", ask.body(), relay)

    def read_request(self, ask: Generation) -> ChatRequest:
        if ask.shape == "chat":
            return ollama_request.chat_request(ask.payload)
        return ollama_request.generate_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        return ("logprobs", "top_logprobs") + (("suffix",) if ask.shape != "chat" else ())

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        return OllamaWriter(ask.model, ask.shape, ask.framing)

    def upstream_call(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        return "/api/chat", ollama_request.request_body(request)

    def reader(self) -> Reader:
        return OllamaReader()


class OpenAICodec:
    name: Dialect = "openai"
    server = "OpenAI's"

    def passthrough(self, ask: Generation) -> Call:
        return Call("/chat/completions", ask.body(), OpenAIPassthrough() if ask.stream else None)

    def read_request(self, ask: Generation) -> ChatRequest:
        return openai_request.chat_request(ask.payload)

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        return ("logprobs", "top_logprobs")

    def writer(self, ask: Generation, request: ChatRequest) -> Writer:
        return OpenAIWriter(ask.model, request.include_usage)

    def upstream_call(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        path = "/completions" if request.raw_prompt is not None else "/chat/completions"
        return path, openai_request.request_body(request)

    def reader(self) -> Reader:
        return OpenAIReader()


CODECS: dict[Dialect, Codec] = {"ollama": OllamaCodec(), "openai": OpenAICodec()}


def plan(ask: Generation, upstream: Dialect) -> Call:
    """How a server speaking ``upstream`` serves ``ask``: the call, and how its answer comes."""
    client, server = CODECS[ask.dialect], CODECS[upstream]
    if client is server:
        return client.passthrough(ask)
    asked = [k for k in client.untranslated(ask) if ask.payload.get(k) not in (None, False, "")]
    if asked:
        raise BadRequest(
            f"{', '.join(asked)}: not translated for this model's server, which speaks "
            f"{server.server} API; leave {'them' if len(asked) > 1 else 'it'} out"
        )
    request = client.read_request(ask)
    path, body = server.upstream_call(request)
    translate = Translate(server.reader(), client.writer(ask, request), aggregate=not ask.stream)
    return Call(path, orjson.dumps(body), translate)
