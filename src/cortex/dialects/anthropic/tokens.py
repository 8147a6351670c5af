"""Token counts for ``/v1/messages/count_tokens``: an upstream's tokenizer, or an estimate.

llama-server's ``POST /tokenize`` takes ``{"content": text}`` and vLLM's takes
``{"model", "prompt"}``; both answer with the ``tokens``, and vLLM with a ``count`` too.
The text sent is the request laid out plainly, without the model's chat template, so
even a tokenizer's count is close, not exact: the template adds a few tokens per turn.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import orjson

from ...chat import ChatRequest

BYTES_PER_TOKEN = 4
Tokenizer = Literal["llama.cpp", "vllm"]


def prompt_text(request: ChatRequest) -> str:
    """Everything in the request a model reads: each turn's role, reasoning, text and tool
    calls, then the tools' names, descriptions and schemas."""
    parts: list[str] = []
    for m in request.messages:
        parts.append(m.role)
        parts += [text for text in (m.name, m.thinking, m.content) if text]
        for call in m.tool_calls:
            parts += [call.name, orjson.dumps(call.arguments).decode()]
    for tool in request.tools or ():
        parts.append(orjson.dumps(tool).decode())
    return "\n".join(parts)


def estimate_tokens(request: ChatRequest) -> int:
    """About four UTF-8 bytes a token (ceil), as tokenizers of English text and code
    average; at least 1 for a request with any message. Images are not counted."""
    size = len(prompt_text(request).encode())
    return max(math.ceil(size / BYTES_PER_TOKEN), 1 if request.messages else 0)


def tokenize_body(request: ChatRequest, tokenizer: Tokenizer) -> dict[str, Any]:
    """The body for the upstream's ``/tokenize``."""
    text = prompt_text(request)
    if tokenizer == "vllm":
        return {"model": request.model, "prompt": text}
    return {"content": text}


def token_count(answer: Any) -> int | None:
    """The count in a ``/tokenize`` answer, if it holds one."""
    if not isinstance(answer, dict):
        return None
    count = answer.get("count")
    if type(count) is int and count >= 0:
        return count
    tokens = answer.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None
