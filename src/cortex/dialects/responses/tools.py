"""The Responses API's tools as chat function tools, and the names that map between them.

A ``function`` tool is flat in Responses (``name``, ``parameters`` beside ``type``)
and nested under ``function`` in a chat request. A ``namespace`` groups function
tools; its members reach the model with their own names, and a call is given
back with its ``namespace`` so the client finds the tool. A member whose name is
declared more than once (in two namespaces, or also at the top level) is shown
to the model as ``<namespace>.<name>``, as Ollama names every member.
A ``custom`` tool (free text in) is offered as a function of one string
(``custom.function``). Any other tool is one OpenAI runs itself
(``web_search``, ``file_search``, ``mcp``…), which a gateway in front of local
models cannot: the ``builtin`` policy refuses the request or leaves those tools out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from ...chat import ToolChoice
from ...errors import BadRequest
from . import custom

BuiltinPolicy = Literal["refuse", "drop"]
CHOICES: tuple[ToolChoice, ...] = ("auto", "none", "required")
CALLABLE = ("function", "custom")


@dataclass(slots=True)
class ToolNames:
    """The name the model sees for each declared function, and the way back."""

    to_wire: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    to_model: dict[tuple[str | None, str], str] = field(default_factory=dict)
    custom: set[str] = field(default_factory=set)  # model names of custom tools

    def model_name(self, namespace: str | None, name: str) -> str:
        """The name the model knows a function by (undeclared ones keep theirs)."""
        return self.to_model.get((namespace, name), name)

    def wire_name(self, model_name: str) -> tuple[str | None, str]:
        """The ``(namespace, name)`` a client knows a called function by."""
        return self.to_wire.get(model_name, (None, model_name))


def refuse_builtin(kind: str) -> BadRequest:
    return BadRequest(
        f"the built-in tool type '{kind}' is not available: "
        "this server runs local models, which can call function tools only"
    )


def chat_tools(
    tools: list[Any] | None, builtin: BuiltinPolicy
) -> tuple[list[dict[str, Any]], ToolNames]:
    """The chat function tools for a request's ``tools``, and their names."""
    declared: list[tuple[str | None, dict[str, Any]]] = []
    for tool in tools or []:
        kind = _kind(tool)
        if kind in CALLABLE:
            declared.append((None, tool))
        elif kind == "namespace":
            declared.extend(_members(tool, builtin))
        elif builtin == "refuse":
            raise refuse_builtin(kind)
    counts = Counter(_name(tool) for _, tool in declared)
    names = ToolNames()
    chat: list[dict[str, Any]] = []
    for namespace, tool in declared:
        name = _name(tool)
        shown = f"{namespace}.{name}" if namespace and counts[name] > 1 else name
        names.to_wire[shown] = (namespace, name)
        names.to_model[(namespace, name)] = shown
        if tool["type"] == "custom":
            names.custom.add(shown)
            chat.append({"type": "function", "function": custom.function(tool, shown)})
        else:
            chat.append({"type": "function", "function": _function(tool, shown)})
    return chat, names


def _kind(tool: Any) -> str:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if not isinstance(kind, str):
        raise BadRequest("invalid request: every tool needs a type")
    return kind


def _members(namespace: dict[str, Any], builtin: BuiltinPolicy) -> list[tuple[str, dict[str, Any]]]:
    name, members = namespace.get("name"), namespace.get("tools")
    if not isinstance(name, str) or not name or not isinstance(members, list):
        raise BadRequest("invalid request: a namespace tool needs a name and a list of tools")
    found = []
    for member in members:
        kind = _kind(member)
        if kind in CALLABLE:
            found.append((name, member))
        elif builtin == "refuse":
            raise refuse_builtin(kind)
    return found


def _name(tool: dict[str, Any]) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("invalid request: a function tool needs a name")
    return name


def _function(tool: dict[str, Any], name: str) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return function


def tool_choice(
    choice: Any, tools: list[dict[str, Any]], names: ToolNames
) -> tuple[ToolChoice | None, str | None, list[dict[str, Any]]]:
    """``tool_choice`` as the chat choice, the one forced tool, and the tools still offered."""
    if choice is None or choice in CHOICES:
        return choice, None, tools
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in CALLABLE:
        forced = names.model_name(choice.get("namespace"), str(choice.get("name")))
        if forced not in names.to_wire:
            raise BadRequest(f"tool_choice names the function '{forced}', which is not in tools")
        return "required", forced, tools
    if kind == "allowed_tools" and choice.get("mode") in ("auto", "required"):
        allowed = {
            names.model_name(t.get("namespace"), str(t.get("name")))
            for t in choice.get("tools") or []
            if isinstance(t, dict) and t.get("type") in CALLABLE
        }
        kept = [t for t in tools if t["function"]["name"] in allowed]
        return choice["mode"], None, kept
    raise BadRequest(f"tool_choice of type '{kind}' is not supported: only function and custom are")
