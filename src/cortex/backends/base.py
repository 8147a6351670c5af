"""What every backend offers: the phases of its timeouts, and its dialect's ``Wire``.

A ``Wire`` knows how a model server of one dialect serves a client of either
dialect: which path to call, with what body, and how to relay the answer. It
does no I/O, so the API layer says what the client asked (a ``Generation`` or an
``Embedding``) and the backend chosen by the router says how; no layer above the
backends switches on a dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, Self

import orjson

from ..catalog import ModelEntry
from ..config import UpstreamKind
from ..errors import BadRequest, Dialect, UpstreamProtocolError
from ..stream.encode import Framing
from ..stream.relay import Translator


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The phases of one upstream exchange, in seconds."""

    connect: float
    first_byte: float
    idle: float


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

    def named(self, model: str) -> Self:
        """The same request for ``model``, the name its server listed for the one asked for."""
        if model == self.model:
            return self
        return replace(self, payload={**self.payload, "model": model}, raw=None)


@dataclass(frozen=True, slots=True)
class Generation(ClientBody):
    """A client's chat or generate request."""

    dialect: Dialect  # the client's API
    shape: Literal["chat", "generate"]  # generate: Ollama's /api/generate
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


def as_is(answer: bytes) -> bytes:
    return answer


@dataclass(frozen=True, slots=True)
class Exchange:
    """A call answered by one small document, and that document in the client's shape."""

    path: str
    body: bytes
    answer: Callable[[bytes], bytes] = as_is


class Wire(Protocol):
    """One upstream dialect, serving clients of both."""

    @property
    def kind(self) -> UpstreamKind: ...

    def speaks(self, dialect: Dialect) -> bool:
        """Clients of ``dialect`` are relayed as they are, untranslated."""
        return dialect == self.kind

    def generation(self, ask: Generation) -> Call: ...

    def embedding(self, ask: Embedding) -> Exchange: ...

    def show(self, name: str, raw: bytes, models: list[ModelEntry]) -> Exchange | bytes:
        """Ollama's /api/show for a model this backend lists in ``models``: the call to make,
        or the answer itself when the server has no such call."""
        ...


def upstream_json(raw: bytes) -> Any:
    """A model server's JSON answer, parsed; a protocol error if it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the model server's answer is not JSON") from None


def refuse_untranslated(payload: dict[str, Any], fields: tuple[str, ...], server: str) -> None:
    """A 400 for fields asked for that Córtex does not carry across dialects, rather than an
    answer silently without them; ``server`` names the dialect of the model's server."""
    asked = [name for name in fields if payload.get(name) not in (None, False, "")]
    if asked:
        raise BadRequest(
            f"{', '.join(asked)}: not translated for this model's server, which speaks "
            f"{server} API; leave {'them' if len(asked) > 1 else 'it'} out"
        )
