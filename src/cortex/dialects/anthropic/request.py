"""A Messages request body read into ``cortex.chat.ChatRequest``; ``request_body`` writes one back.

How the blocks map:

- ``system``: a string or text blocks, joined with a blank line, as the first message.
  Claude Code's attribution block (``x-anthropic-billing-header: …``) is left out: it is
  for Anthropic's billing, not the model, and it changes with each conversation's first
  prompt, so keeping it at the head of the prompt would defeat the server's prompt cache.
- A ``system`` turn in ``messages`` (an instruction given mid-conversation, as Claude
  Code sends its own for models it does not know): a system message at that place.
- ``text`` blocks of one turn are joined with a blank line; ``image`` blocks with a
  base64 source become the turn's images (a ``url`` or ``file`` source is refused).
- ``document`` blocks with a ``text`` source, or a ``content`` source of text blocks, are
  text (after their ``title``); a PDF (``base64``, ``url`` or ``file`` source) is refused.
- ``tool_use`` (assistant): the turn's tool calls, with their ids.
- ``tool_result`` (user): one ``tool`` message each, before the turn's own text, named
  after the ``tool_use`` it answers. ``is_error: true`` prefixes its content with
  ``"Error: "``, since the neutral shape has no error flag for a tool result.
- ``thinking`` (assistant): the turn's reasoning; its signature is not kept.
  ``redacted_thinking`` is dropped: no local model can read it.
- Any other block type is refused, naming it.

Top-level fields: ``metadata``, ``service_tier``, ``cache_control``, ``context_management``
and ``inference_geo`` change nothing a local model does and are ignored, as is
``cache_control`` on blocks and ``budget_tokens`` (local servers take thinking as on or
off). ``mcp_servers`` and ``container`` need Anthropic's own servers and are refused;
fields this module does not know are ignored.
"""

from __future__ import annotations

from typing import Any

from ...chat import ChatRequest, Message, ToolCall, ToolChoice
from ...errors import BadRequest
from ...json_depth import MAX_JSON_DEPTH, too_deep
from .upstream import request_body

__all__ = ["chat_request", "count_request", "request_body"]

BLOCK_SEPARATOR = "\n\n"
BILLING_HEADER = "x-anthropic-billing-header:"
REFUSED_FIELDS = ("mcp_servers", "container")
TOOL_CHOICES: dict[str, ToolChoice] = {"auto": "auto", "any": "required", "tool": "required"}
CUSTOM_TOOL_TYPES = (None, "custom")
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def chat_request(payload: dict[str, Any]) -> ChatRequest:
    """A validated ``/v1/messages`` body, in no dialect; ``BadRequest`` names what it can't hold."""
    max_tokens = payload.get("max_tokens")
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    request = count_request(payload)
    request.stream = payload.get("stream") is True
    sampling: dict[str, Any] = {"max_tokens": max_tokens}
    for key in ("temperature", "top_p", "top_k"):
        if payload.get(key) is not None:
            sampling[key] = payload[key]
    if payload.get("stop_sequences"):
        sampling["stop"] = list(payload["stop_sequences"])
    request.sampling = sampling
    return request


def count_request(payload: dict[str, Any]) -> ChatRequest:
    """A validated ``/v1/messages/count_tokens`` body (or a Messages body), in no dialect."""
    for key in REFUSED_FIELDS:
        if payload.get(key):
            raise BadRequest(f"{key}: not supported by this gateway")
    messages = _system(payload.get("system"))
    names: dict[str, str] = {}
    for index, raw in enumerate(payload["messages"]):
        messages += _turn(raw, f"messages.{index}", names)
    request = ChatRequest(
        model=payload["model"],
        messages=messages,
        tools=_tools(payload.get("tools")),
        include_usage=True,
        think=_think(payload.get("thinking"), payload.get("output_config")),
        think_optional=True,
        format=_format(payload.get("output_config"), payload.get("output_format")),
    )
    _tool_choice(payload.get("tool_choice"), request)
    return request


def _system(system: Any, where: str = "system") -> list[Message]:
    if isinstance(system, list):
        texts = _texts(system, where)
        system = BLOCK_SEPARATOR.join(t for t in texts if not t.startswith(BILLING_HEADER))
    return [Message("system", system)] if system else []


def _texts(blocks: list[Any], where: str) -> list[str]:
    texts = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise BadRequest(f"{where}.{index}: only text blocks are supported here")
        texts.append(_string(block, "text", f"{where}.{index}"))
    return texts


def _string(block: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = block.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"{where}.{key}: Input should be a valid string")
    return value


def _turn(raw: dict[str, Any], where: str, names: dict[str, str]) -> list[Message]:
    """One Messages turn: its tool results (as ``tool`` messages), then the turn itself."""
    role = raw["role"]
    content = raw["content"]
    if isinstance(content, str):
        return [Message(role, content)]
    where = f"{where}.content"
    if role == "system":
        return _system(content, where)
    texts: list[str] = []
    turn = Message(role)
    results: list[Message] = []
    for index, block in enumerate(content):
        here = f"{where}.{index}"
        if not isinstance(block, dict):
            raise BadRequest(f"{here}: Input should be an object")
        kind = block.get("type")
        if kind == "text":
            texts.append(_string(block, "text", here))
        elif kind == "image":
            turn.images.append(_image(block, here))
        elif kind == "document":
            texts.append(_document(block, here))
        elif kind == "tool_use" and role == "assistant":
            call = _tool_use(block, here)
            names[call.id or ""] = call.name
            turn.tool_calls.append(call)
        elif kind == "tool_result" and role == "user":
            results.append(_tool_result(block, here, names))
        elif kind == "thinking" and role == "assistant":
            turn.thinking += _string(block, "thinking", here)
        elif kind == "redacted_thinking" and role == "assistant":
            continue
        else:
            raise BadRequest(f"{here}.type: {kind!r} blocks are not supported in a {role} turn")
    turn.content = BLOCK_SEPARATOR.join(texts)
    keep = texts or turn.images or turn.tool_calls or turn.thinking or not results
    return [*results, turn] if keep else results


def _image(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: Field required")
    if source.get("type") != "base64":
        raise BadRequest(f"{where}.source: only base64 image sources are supported")
    return _string(source, "data", f"{where}.source")


def _document(block: dict[str, Any], where: str) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: Field required")
    kind = source.get("type")
    if kind == "text":
        text = _string(source, "data", f"{where}.source")
    elif kind == "content" and isinstance(source.get("content"), str):
        text = source["content"]
    elif kind == "content" and isinstance(source.get("content"), list):
        text = BLOCK_SEPARATOR.join(_texts(source["content"], f"{where}.source.content"))
    else:
        raise BadRequest(
            f"{where}.source.type: 'document' blocks with a {kind!r} source (a PDF) are not "
            "supported; only text documents can be carried to a local model server"
        )
    title = block.get("title")
    return f"{title}{BLOCK_SEPARATOR}{text}" if isinstance(title, str) and title else text


def _tool_use(block: dict[str, Any], where: str) -> ToolCall:
    call_id = _string(block, "id", where)
    name = _string(block, "name", where)
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise BadRequest(f"{where}.input: Input should be an object")
    if too_deep(arguments):
        raise BadRequest(f"{where}.input: nested more than {MAX_JSON_DEPTH} levels deep")
    return ToolCall(name, arguments, call_id)


def _tool_result(block: dict[str, Any], where: str, names: dict[str, str]) -> Message:
    call_id = _string(block, "tool_use_id", where)
    content = block.get("content", "")
    message = Message("tool", tool_call_id=call_id, name=names.get(call_id))
    if isinstance(content, str):
        message.content = content
    elif isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            here = f"{where}.content.{index}"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_string(part, "text", here))
            elif kind == "image":
                message.images.append(_image(part, here))
            elif kind == "document":
                texts.append(_document(part, here))
            else:
                raise BadRequest(f"{here}.type: {kind!r} blocks are not supported in a tool result")
        message.content = BLOCK_SEPARATOR.join(texts)
    else:
        raise BadRequest(f"{where}.content: Input should be a string or a list of blocks")
    if block.get("is_error") is True:
        message.content = "Error: " + message.content
    return message


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    functions = []
    for index, tool in enumerate(tools):
        if tool.get("type") not in CUSTOM_TOOL_TYPES:
            raise BadRequest(f"tools.{index}.type: {tool['type']!r} tools are not supported")
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        functions.append({"type": "function", "function": function})
    return functions


def _tool_choice(choice: Any, request: ChatRequest) -> None:
    if not choice:
        return
    kind = choice["type"]
    if kind == "none":
        request.tool_choice = "none"
        return
    request.tool_choice = TOOL_CHOICES[kind]
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("tool_choice.name: Field required")
        request.forced_tool = name
    if choice.get("disable_parallel_tool_use") is True:
        request.parallel_tool_calls = False


def _think(thinking: Any, output_config: Any) -> bool | str | None:
    """``thinking`` on or off; else ``output_config.effort`` as an effort, as Ollama reads it."""
    if thinking:
        return bool(thinking["type"] != "disabled")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    return EFFORTS.get(effort) if isinstance(effort, str) else None


def _format(output_config: Any, output_format: Any) -> dict[str, Any] | None:
    """The schema an answer must follow: ``output_config.format`` (older: ``output_format``)."""
    if isinstance(output_config, dict) and output_config.get("format") is not None:
        output_format = output_config["format"]
    if output_format is None:
        return None
    schema = output_format.get("schema") if isinstance(output_format, dict) else None
    if not isinstance(schema, dict) or output_format.get("type") != "json_schema":
        raise BadRequest("output_config.format: only a json_schema with a schema is supported")
    return schema
