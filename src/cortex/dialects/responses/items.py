"""A conversation's Responses items, read into chat messages.

One assistant turn in Responses is several items in a row: its reasoning, its
message, its function calls. They become one assistant ``Message``: reasoning
is held until the next assistant message or call (and left out when none
follows), calls join the assistant turn just before them, and a message that
follows calls joins their turn. A call's ``namespace`` is folded into the name
the model knows it by (``tools.ToolNames``); a ``custom_tool_call`` is a call
with its text as the one argument ``input`` (``custom``). Items of tools OpenAI
runs itself (``web_search_call``, ``local_shell_call``…), and the outputs that
answer them, follow the built-in tools' policy: refused, or left out.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...chat import Message, ToolCall
from ...errors import BadRequest
from ...json_depth import MAX_JSON_DEPTH, too_deep
from . import custom
from .tools import BuiltinPolicy, ToolNames

ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text", "reasoning_text", "refusal")
# Items of the tools OpenAI runs itself, and the outputs that answer them.
BUILTIN_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "compaction",
        "computer_call",
        "computer_call_output",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
    }
)


class Conversation:
    """Items read one by one into the messages of a chat."""

    def __init__(self, names: ToolNames, builtin: BuiltinPolicy) -> None:
        self.messages: list[Message] = []
        self._names = names
        self._builtin = builtin
        self._thinking: list[str] = []
        self._calls: dict[str, str] = {}  # call_id → the model's name for the function
        self._dropped: set[str] = set()  # call_ids of built-in calls left out

    def add(self, item: Any) -> None:
        if not isinstance(item, dict):
            raise BadRequest("invalid request: every input item must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if not isinstance(kind, str):
            raise BadRequest("invalid request: an input item's type must be a string")
        if kind == "message":
            self._message(item)
        elif kind in ("function_call", "custom_tool_call"):
            self._call(item, kind)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._output(item)
        elif kind == "reasoning":
            self._thinking.append(_reasoning_text(item))
        elif kind in BUILTIN_ITEMS:
            if self._builtin == "refuse":
                raise BadRequest(
                    f"input items of type '{kind}' belong to built-in tools, "
                    "which this server does not run"
                )
            if isinstance(call_id := item.get("call_id"), str):
                self._dropped.add(call_id)
        elif kind == "item_reference":
            raise BadRequest(f"the item_reference '{item.get('id')}' cannot be resolved")
        else:
            raise BadRequest(f"invalid request: unknown input item type '{kind}'")

    def _message(self, item: dict[str, Any]) -> None:
        given = item.get("role")
        role = ROLES.get(given) if isinstance(given, str) else None
        if role is None:
            raise BadRequest(f"invalid request: unknown message role '{item.get('role')}'")
        text, images = content(item.get("content"))
        last = self.messages[-1] if self.messages else None
        if role != "assistant":
            self._thinking.clear()
            self.messages.append(Message(role=role, content=text, images=images))
        elif last is not None and last.role == "assistant" and last.tool_calls:
            last.content = "\n".join(t for t in (last.content, text) if t)
            last.images += images
            last.thinking = last.thinking or self._take_thinking()
        else:
            thinking = self._take_thinking()
            self.messages.append(Message("assistant", text, images, thinking=thinking))

    def _call(self, item: dict[str, Any], kind: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str) or not name:
            raise BadRequest(f"invalid request: a {kind} item needs a call_id and a name")
        namespace = item.get("namespace")
        name = self._names.model_name(namespace if isinstance(namespace, str) else None, name)
        custom_call = kind == "custom_tool_call"
        given = custom.arguments(item) if custom_call else arguments(item.get("arguments"))
        call = ToolCall(name, given, call_id)
        self._calls[call_id] = name
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant":
            last.tool_calls.append(call)
            last.thinking = last.thinking or self._take_thinking()
        else:
            thinking = self._take_thinking()
            self.messages.append(Message("assistant", tool_calls=[call], thinking=thinking))

    def _output(self, item: dict[str, Any]) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise BadRequest("invalid request: a tool call's output needs its call_id, a string")
        if call_id in self._dropped:
            return
        if call_id not in self._calls:
            raise BadRequest(f"No tool call found for function call output with call_id {call_id}.")
        output = item.get("output")
        text, images = (output, []) if isinstance(output, str) else content(output)
        self._thinking.clear()
        self.messages.append(
            Message("tool", text, images, tool_call_id=call_id, name=self._calls[call_id])
        )

    def _take_thinking(self) -> str:
        thinking = "\n\n".join(t for t in self._thinking if t)
        self._thinking.clear()
        return thinking


def content(parts: Any) -> tuple[str, list[str]]:
    """A message's content (a string, or parts) as its text and its base64 images."""
    if parts is None or isinstance(parts, str):
        return parts or "", []
    if not isinstance(parts, list):
        raise BadRequest("invalid request: content must be a string or a list of parts")
    texts, images = [], []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise BadRequest(f"invalid request: a {kind} part's text must be a string")
            texts.append(text)
        elif kind == "input_image":
            images.append(_image(part))
        elif kind == "input_file":
            raise BadRequest("file inputs are not supported; send their text as input_text")
        else:
            raise BadRequest(f"invalid request: unknown content part type '{kind}'")
    return "".join(texts), images


def _image(part: dict[str, Any]) -> str:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise BadRequest("images must be given as base64 data: URLs in image_url (not file_id)")
    if not url.startswith("data:") or ";base64," not in url:
        raise BadRequest("image URLs are not fetched: send images as base64 data: URLs")
    return url.split(";base64,", 1)[1]


def arguments(raw: Any) -> dict[str, Any]:
    """A function call's arguments: JSON text holding an object (empty means none)."""
    if raw is None or raw == "":
        return {}
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise BadRequest("a function_call's arguments must be JSON text holding an object")
    if too_deep(parsed):
        raise BadRequest(f"function call arguments are nested more than {MAX_JSON_DEPTH} levels")
    return parsed


def _reasoning_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its content (raw reasoning) if sent, else its summary."""
    for key in ("content", "summary"):
        parts = item.get(key)
        if isinstance(parts, list) and parts:
            return "\n\n".join(
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return ""
