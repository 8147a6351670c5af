"""The Responses API's response object and its output items, as plain dicts.

The response echoes the request's settings (``request_echo``: the validated
body, with ``store`` as the API layer will honour it). Settings the client left
out are ``null`` where OpenAI's schema allows it, rather than a default the
local model may not share. ``output_text`` is not sent: the SDKs derive it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from ...errors import CortexError
from ...events import Usage

Status = Literal["in_progress", "completed", "incomplete", "failed"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def item_id(prefix: str, response_id: str, index: int) -> str:
    """An output item's id: its response's and its place in the output, so a later request's
    ``item_reference`` to it (the AI SDK sends one for each earlier item) finds the record."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def response_of(item: str) -> str | None:
    """The id of the response whose output has the item ``item`` names, if Córtex named it."""
    head, _, index = item.partition("_")[2].rpartition("_")
    return f"resp_{head}" if head and index.isdigit() else None


def response_object(response_id: str, model: str, echo: dict[str, Any]) -> dict[str, Any]:
    """The response as ``response.created`` shows it: in progress, no output yet."""
    reasoning = echo.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": echo.get("previous_response_id"),
        "prompt_cache_key": echo.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": None,
        "service_tier": "default",
        "store": echo.get("store", True),
        "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools") or [],
        "top_logprobs": 0,
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "usage": None,
        "user": echo.get("user"),
        "metadata": echo.get("metadata") or {},
    }


def finished(
    response: dict[str, Any], status: Status, output: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    """The response at its end: completed, or incomplete for want of output tokens."""
    done = {**response, "status": status, "output": output, "usage": usage}
    done["completed_at"] = int(time.time()) if status == "completed" else None
    if status == "incomplete":
        done["incomplete_details"] = {"reason": "max_output_tokens"}
    return done


def failed(
    response: dict[str, Any], output: list[dict[str, Any]], exc: CortexError
) -> dict[str, Any]:
    code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
    error = {"code": code, "message": exc.message}
    return {**response, "status": "failed", "output": output, "error": error}


def usage_object(usage: Usage, pieces: int) -> dict[str, Any]:
    """Token counts as Responses reports them; output counts the pieces if the server did not."""
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens if usage.completion_tokens is not None else pieces
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens or 0,
            "cache_write_tokens": 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": prompt + completion,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: ItemStatus) -> dict[str, Any]:
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def reasoning_item(
    item_id: str, text: str | None, summary: bool, status: ItemStatus
) -> dict[str, Any]:
    """Reasoning as raw ``reasoning_text`` content, or as the summary a client asked for."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "status": status, "summary": []}
    if summary:
        item["summary"] = [] if text is None else [{"type": "summary_text", "text": text}]
    else:
        item["content"] = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return item


def call_item(
    item_id: str,
    call_id: str,
    name: tuple[str | None, str],
    arguments: str,
    status: ItemStatus,
    *,
    custom: bool = False,
) -> dict[str, Any]:
    """A ``function_call`` item (its ``arguments``), or with ``custom`` a
    ``custom_tool_call`` (its ``input``): the tool's name, and its namespace if it has one."""
    namespace, tool = name
    item = {
        "id": item_id,
        "type": "custom_tool_call" if custom else "function_call",
        "status": status,
        "call_id": call_id,
        "name": tool,
        "input" if custom else "arguments": arguments,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item
