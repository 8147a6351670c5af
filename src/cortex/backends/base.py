"""What every backend offers: the phases of its timeouts, and its dialect's ``Wire``.

A ``Wire`` knows how a model server of one dialect serves a client of either
dialect: which path to call, with what body, and how to relay the answer. It
does no I/O, so the API layer says what the client asked (a ``Generation`` or an
``Embedding``) and the backend chosen by the router says how; no layer above the
backends switches on a dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from ..asks import Call, Embedding, Generation
from ..catalog import ModelEntry
from ..dialects.codecs import plan
from ..errors import Dialect, UpstreamProtocolError


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The phases of one upstream exchange, in seconds."""

    connect: float
    first_byte: float
    idle: float


def as_is(answer: bytes) -> bytes:
    return answer


@dataclass(frozen=True, slots=True)
class Exchange:
    """A call answered by one small document, and that document in the client's shape."""

    path: str
    body: bytes
    answer: Callable[[bytes], bytes] = as_is


class Wire(Protocol):
    """One upstream dialect, serving clients of every dialect (through the codecs), with
    what the router needs to know of its servers."""

    @property
    def kind(self) -> Dialect: ...

    server: str  # how the start-up line names such a server
    catalogue_path: str  # the server's model list
    exact_names: bool  # the server matches model names exactly (else by Ollama's rule)
    load_signal: Literal["residency", "engine"]  # /api/ps, or the engine's /metrics or /slots
    tokenizes: bool  # the server may have llama.cpp's or vLLM's /tokenize at its root
    streams_only: bool = False  # it answers every generation as a stream (the embedded model)

    def models(self, catalogue: bytes) -> list[ModelEntry]:
        """The server's model list, read."""
        ...

    def speaks(self, dialect: Dialect) -> bool:
        """Clients of ``dialect`` are relayed as they are, untranslated."""
        return dialect == self.kind

    def generation(self, ask: Generation) -> Call:
        """The call that serves ``ask`` here (``dialects.codecs.plan``)."""
        return plan(ask, self.kind, streams_only=self.streams_only)

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
