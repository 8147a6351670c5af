"""An answer as it streams, in no dialect: what every codec's reader makes and writer reads.

A reader turns an upstream's lines into these events; a writer turns them into
the client's bytes. The order is the answer's own: reasoning and text pieces,
tool calls (each a ``ToolStart``, its arguments' JSON in ``ToolArguments``
pieces, a ``ToolEnd``), then one ``Finish``, or a ``Failure`` the upstream
reported in its stream. A writer that needs content-block boundaries (Anthropic's,
the Responses API's items) draws them where the kind of event changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .json_depth import too_deep

# Why an answer ended; "stop" covers a stop sequence (``Finish.stop_sequence`` says which).
FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(slots=True)
class Usage:
    """Token counts as the model server reported them (``None``: it did not say)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # of the prompt, read from the server's cache
    reasoning_tokens: int | None = None  # of the completion, spent thinking


def token_count(value: Any) -> int | None:
    """A token count as a server reported it, if it is one (else ``None``: not said)."""
    return value if type(value) is int and value >= 0 else None


def model_name(value: Any) -> str | None:
    """A model's name as a server gave it in an answer, if it is one."""
    return value if type(value) is str and value else None


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    # Its tokens' log probabilities, where asked for: OpenAI's and Ollama's shape, which are
    # one ({"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}).
    logprobs: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str = ""
    signature: str = ""  # a signature over the reasoning, where the dialect has one


@dataclass(frozen=True, slots=True)
class ToolStart:
    index: int  # the call's place among this answer's calls, from 0
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class ToolArguments:
    index: int
    json: str  # a piece of the arguments' JSON text; the pieces joined are one object


@dataclass(frozen=True, slots=True)
class ToolEnd:
    index: int


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    durations: dict[str, int] | None = None  # Ollama's *_duration fields, in ns
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """The upstream reported an error inside its stream."""

    message: str


Event = Text | Reasoning | ToolStart | ToolArguments | ToolEnd | Finish | Failure


@dataclass(slots=True)
class Call:
    """A tool call gathered whole."""

    id: str | None
    name: str
    arguments: str = ""  # JSON text


def arguments_object(text: str) -> dict[str, Any]:
    """A call's JSON arguments as an object, for the dialects that carry them as one; text
    that does not parse as one is kept, under ``_unparsed``, rather than lost."""
    try:
        parsed = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or too_deep(parsed):
        return {"_unparsed": text}
    return parsed


@dataclass(slots=True)
class Answer:
    """Events gathered into one whole answer, for clients that asked for no stream."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    signature: str = ""
    calls: dict[int, Call] = field(default_factory=dict)  # by the calls' index
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    finish: Finish | None = None
    pieces: int = 0  # text and reasoning pieces, for when the server reports no counts

    def add(self, event: Event) -> None:
        match event:
            case Text(text, logprobs):
                self.text.append(text)
                self.pieces += 1
                if logprobs:
                    self.logprobs += logprobs
            case Reasoning(text, signature):
                self.reasoning.append(text)
                self.signature += signature
                self.pieces += bool(text)
            case ToolStart(index, call_id, name):
                self.calls[index] = Call(call_id, name)
            case ToolArguments(index, piece):
                if index in self.calls:
                    self.calls[index].arguments += piece
            case Finish():
                self.finish = event
            case _:
                pass

    @property
    def content(self) -> str:
        return "".join(self.text)

    @property
    def thinking(self) -> str:
        return "".join(self.reasoning)
