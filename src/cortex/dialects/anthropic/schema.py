"""Request models of ``/v1/messages`` and ``/v1/messages/count_tokens``, for validation and OpenAPI.

Content blocks are checked block by block in ``request.py``; here they only need a ``type``.
Fields Córtex does not read are allowed and go on untouched to a Messages upstream.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ContentBlock(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: str


class MessageParam(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["user", "assistant", "system"]  # system: an instruction mid-conversation
    content: str | list[ContentBlock]


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str
    type: str | None = None  # "custom", or a server tool's versioned type
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class CountTokensRequest(BaseModel):
    """Anthropic's token count request: a Messages body without the sampling fields."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[ContentBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None


class MessagesRequest(CountTokensRequest):
    """Anthropic's Messages request; ``max_tokens`` is required, as Anthropic requires it."""

    max_tokens: int = Field(ge=1)
    stream: bool | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
