"""A chat exchange in no dialect: what the translators read and write.

Same-dialect relays never build these; they exist so that any client dialect
can talk to any upstream dialect through one small shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .events import FinishReason, Usage

ToolChoice = Literal["auto", "required", "none"]


@dataclass(slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(slots=True)
class Message:
    role: str
    content: str = ""
    images: list[str] = field(default_factory=list)  # base64, without a data: prefix
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # the tool's name, on a tool result
    thinking: str = ""  # an assistant turn's reasoning, where the client sent it back


@dataclass(slots=True)
class ChatRequest:
    """Sampling keys use OpenAI's names (``max_tokens``, ``stop`` as a list…); ``tools``
    are OpenAI's function tools (``{"type": "function", "function": {...}}``), which
    Ollama reads as they are."""

    model: str
    messages: list[Message]
    stream: bool = True
    tools: list[dict[str, Any]] | None = None
    format: Literal["json"] | dict[str, Any] | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    include_usage: bool = False
    raw_prompt: str | None = None  # a completion prompt sent as is, without a chat template
    suffix: str | None = None  # with a raw prompt: the text after the gap to fill in
    think: bool | str | None = None  # Ollama's think: on, off, or an effort ("low"…"high")
    # Thinking where the model can: one that cannot answers without (Ollama relaxes an
    # Anthropic client's thinking so, for agent CLIs that always ask for it).
    think_optional: bool = False
    tool_choice: ToolChoice | None = None
    forced_tool: str | None = None  # with tool_choice "required": this tool and no other
    parallel_tool_calls: bool | None = None
    logprobs: bool = False  # each token's log probability, with top_logprobs alternatives
    top_logprobs: int | None = None


@dataclass(slots=True)
class Delta:
    """One piece of an answer; the last one has ``finish_reason`` set."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    durations: dict[str, int] | None = None  # Ollama's *_duration fields, in ns
