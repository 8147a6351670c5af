"""``cortex.chat.ChatRequest`` written as a Messages body, for an upstream that speaks Messages.

The inverse of ``request.py``: system messages become ``system``; tool results become
``tool_result`` blocks in a user turn, and turns of the same role are merged, as the
Messages API wants them; a turn that is one text block is sent as a string.
Sampling keys outside the Messages API (``seed``, ``min_p``, penalties…) are dropped:
the API refuses unknown fields. Without ``max_tokens``, which Messages requires,
``DEFAULT_MAX_TOKENS`` is sent.
"""

from __future__ import annotations

import secrets
from typing import Any

from ...chat import ChatRequest, Message
from ...errors import BadRequest

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024  # the smallest budget_tokens Anthropic accepts
IMAGE_PREFIXES = {
    "/9j/": "image/jpeg",
    "iVBOR": "image/png",
    "R0lG": "image/gif",
    "UklG": "image/webp",
}

Block = dict[str, Any]


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The body for a Messages upstream (always streamed)."""
    if request.raw_prompt is not None:
        raise BadRequest("a raw prompt cannot be sent to a Messages API server")
    sampling = request.sampling
    max_tokens = sampling.get("max_tokens") or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
    system = [m.content for m in request.messages if m.role in ("system", "developer")]
    if system:
        body["system"] = "\n\n".join(system)
    body["messages"] = _turns(request.messages)
    body["stream"] = True
    for key in ("temperature", "top_p", "top_k"):
        if sampling.get(key) is not None:
            body[key] = sampling[key]
    if sampling.get("stop"):
        stop = sampling["stop"]
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    choice = _tool_choice(request)
    if choice is not None:
        body["tool_choice"] = choice
    _thinking(request.think, max_tokens, body)
    if request.format is not None:
        schema = request.format if isinstance(request.format, dict) else {"type": "object"}
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
    return body


def _turns(messages: list[Message]) -> list[dict[str, Any]]:
    turns: list[tuple[str, list[Block]]] = []
    pending: list[str] = []  # ids of the last calls, for results that carry none
    for m in messages:
        if m.role in ("system", "developer"):
            continue
        if m.role == "tool":
            role, blocks = "user", [_tool_result(m, pending)]
        elif m.role == "assistant":
            role, blocks = "assistant", _assistant(m, len(turns))
            pending = [block["id"] for block in blocks if block["type"] == "tool_use"]
        else:
            role, blocks = "user", _user(m)
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [{"role": role, "content": _content(blocks)} for role, blocks in turns]


def _content(blocks: list[Block]) -> str | list[Block]:
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks


def _image(data: str) -> Block:
    media_type = next((t for p, t in IMAGE_PREFIXES.items() if data.startswith(p)), "image/png")
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _user(m: Message) -> list[Block]:
    blocks = [_image(image) for image in m.images]
    if m.content or not blocks:
        blocks.append({"type": "text", "text": m.content})
    return blocks


def _assistant(m: Message, turn: int) -> list[Block]:
    blocks: list[Block] = []
    if m.thinking:
        blocks.append({"type": "thinking", "thinking": m.thinking, "signature": ""})
    if m.content or not (m.thinking or m.tool_calls):
        blocks.append({"type": "text", "text": m.content})
    for i, call in enumerate(m.tool_calls):
        call_id = call.id or f"toolu_{turn}_{i}_{secrets.token_hex(4)}"
        blocks.append(
            {"type": "tool_use", "id": call_id, "name": call.name, "input": call.arguments}
        )
    return blocks


def _tool_result(m: Message, pending: list[str]) -> Block:
    call_id = m.tool_call_id or (pending[0] if pending else "toolu_0")
    if call_id in pending:
        pending.remove(call_id)
    content: str | list[Block] = m.content
    if m.images:
        content = [{"type": "text", "text": m.content}, *map(_image, m.images)]
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}


def _tool(tool: dict[str, Any]) -> Block:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        raise BadRequest("only function tools can be sent to a Messages API server")
    out: Block = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice(request: ChatRequest) -> Block | None:
    choice: Block | None = None
    if request.tool_choice == "none":
        return {"type": "none"}
    if request.tool_choice == "required":
        forced = request.forced_tool
        choice = {"type": "tool", "name": forced} if forced else {"type": "any"}
    elif request.tool_choice == "auto" or request.parallel_tool_calls is False:
        choice = {"type": "auto"}
    if choice is not None and request.parallel_tool_calls is False:
        choice["disable_parallel_tool_use"] = True
    return choice


def _thinking(think: bool | str | None, max_tokens: int, body: dict[str, Any]) -> None:
    """Thinking on (with the smallest budget, or half the answer's if larger) or off;
    an effort goes in ``output_config.effort`` too."""
    if think is None:
        return
    if think is False:
        body["thinking"] = {"type": "disabled"}
        return
    budget = max(MIN_THINKING_BUDGET, max_tokens // 2)
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if isinstance(think, str):
        body["output_config"] = {"effort": think}
