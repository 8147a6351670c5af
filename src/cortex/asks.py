"""What a client asked, as the API layer read and validated it, and the call that serves it.

The API layer says what the client asked (a ``Generation`` or an ``Embedding``);
the backend the router chose says how to serve it (a ``Call``), through the codecs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Self

import orjson

from .errors import Dialect
from .stream.contract import Translator
from .stream.encode import Framing


@dataclass(frozen=True, slots=True)
class ClientBody:
    """A client's request body, as the API layer read and validated it."""

    payload: dict[str, Any]  # with its model set
    raw: bytes | None  # the client's own body, while the payload is unchanged

    @property
    def model(self) -> str:
        return str(self.payload["model"])

    def body(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.payload)

    @property
    def prompt(self) -> Any:
        """What the router reads for prompt-prefix affinity: the chat's messages."""
        return self.payload.get("messages")

    def named(self, model: str) -> Self:
        """The same request for ``model``, the name its server listed for the one asked for."""
        if model == self.model:
            return self
        return replace(self, payload={**self.payload, "model": model}, raw=None)


@dataclass(frozen=True, slots=True)
class Generation(ClientBody):
    """A client's chat or generate request."""

    dialect: Dialect  # the client's API
    # generate: Ollama's /api/generate; completion: OpenAI's /v1/completions
    shape: Literal["chat", "generate", "completion"]
    stream: bool
    framing: Framing  # how the client reads a stream


EmbeddingRoute = Literal["ollama-embed", "ollama-embeddings", "openai"]


@dataclass(frozen=True, slots=True)
class Embedding(ClientBody):
    """A client's embeddings request: Ollama's /api/embed or /api/embeddings, or OpenAI's."""

    route: EmbeddingRoute


@dataclass(frozen=True, slots=True)
class Call:
    """A streaming call: its path and body, and how to relay the answer (None: it is one
    whole JSON document, passed on as it is)."""

    path: str
    body: bytes
    translator: Translator | None
    # The body again without thinking, for a server that refuses it for this model.
    unthinking: bytes | None = None
