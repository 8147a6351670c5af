"""Custom tools (free text in, such as Codex's ``apply_patch``), for models that call functions.

A ``custom`` tool takes text, optionally in a grammar, instead of JSON arguments. The
model is offered it as a function of one string argument, ``input``, whose description
carries the tool's format; the model's call goes back to the client as a
``custom_tool_call`` whose ``input`` is that string, and a ``custom_tool_call`` the
client sends back is read as a call with that one argument. Codex's own function form
of ``apply_patch`` takes the same ``{"input": …}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import BadRequest

INPUT = "input"


def function(tool: dict[str, Any], name: str) -> dict[str, Any]:
    """The chat function a custom tool is offered as."""
    function: dict[str, Any] = {"name": name}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    argument = {"type": "string", "description": _input_description(tool.get("format"))}
    function["parameters"] = {
        "type": "object",
        "properties": {INPUT: argument},
        "required": [INPUT],
        "additionalProperties": False,
    }
    return function


def _input_description(fmt: Any) -> str:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind is None or kind == "text":
        return "The tool's whole input, as plain text."
    if kind == "grammar" and isinstance(fmt, dict) and isinstance(fmt.get("definition"), str):
        syntax = fmt.get("syntax") or "the"
        return f"The tool's whole input, as text in this {syntax} grammar:\n{fmt['definition']}"
    raise BadRequest(f"invalid request: unknown custom tool format type '{kind}'")


def input_text(arguments: str) -> str:
    """A call's free text: its ``input`` string (or its only string argument), else the
    arguments as the model wrote them."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict):
        if isinstance(parsed.get(INPUT), str):
            return parsed[INPUT]  # type: ignore[no-any-return]
        values = list(parsed.values())
        if len(values) == 1 and isinstance(values[0], str):
            return values[0]
    return arguments


def arguments(item: dict[str, Any]) -> dict[str, Any]:
    """A client's ``custom_tool_call`` item as the arguments of a function call."""
    text = item.get(INPUT)
    if not isinstance(text, str):
        raise BadRequest("invalid request: a custom_tool_call item needs its input as a string")
    return {INPUT: text}
