"""A Responses API request (``POST /v1/responses``), read into ``cortex.chat.ChatRequest``.

Fields read: ``model``, ``instructions`` (a system message first), ``input`` and
the stored items of ``previous_response_id`` (given as ``history``, before
them) and of other stored responses that its ``item_reference``s name (given as
``referenced``), ``tools``, ``tool_choice``, ``parallel_tool_calls``,
``max_output_tokens``, ``temperature``, ``top_p``, ``reasoning.effort``,
``text.format``, ``stream``.
Fields accepted and knowingly left to others or ignored: ``store`` and
``prompt_cache_key`` (the API layer's: storage, routing), ``include``,
``client_metadata``, ``metadata``, ``user``, ``service_tier``, ``truncation``,
``reasoning.summary`` (the writer's), ``text.verbosity``, ``background: false``.
"""

from __future__ import annotations

from typing import Any

from ...chat import ChatRequest
from ...errors import BadRequest
from .items import Conversation
from .tools import BuiltinPolicy, chat_tools, tool_choice

EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


def chat_request(
    payload: dict[str, Any],
    history: list[dict[str, Any]] | None = None,
    *,
    referenced: dict[str, dict[str, Any]] | None = None,
    builtin_tools: BuiltinPolicy = "refuse",
) -> ChatRequest:
    """A validated Responses body, in no dialect; ``history`` is the stored conversation
    (input and output items) of its ``previous_response_id``, ``referenced`` the stored
    items its ``item_reference``s name from other responses, by id."""
    if payload.get("background") is True:
        raise BadRequest("background responses are not supported; leave background false")
    if payload.get("conversation") is not None:
        raise BadRequest("conversation is not supported; chain responses with previous_response_id")
    tools, names = chat_tools(payload.get("tools"), builtin_tools)
    choice, forced, tools = tool_choice(payload.get("tool_choice"), tools, names)
    conversation = Conversation(names, builtin_tools)
    instructions = payload.get("instructions")
    if isinstance(instructions, str) and instructions:
        conversation.add({"type": "message", "role": "system", "content": instructions})
    for item in _resolved(input_items(payload.get("input")), history or [], referenced):
        conversation.add(item)
    if not conversation.messages:
        raise BadRequest("invalid request: input is required")
    sampling = {k: payload[k] for k in ("temperature", "top_p") if payload.get(k) is not None}
    if payload.get("max_output_tokens") is not None:
        sampling["max_tokens"] = payload["max_output_tokens"]
    return ChatRequest(
        model=payload["model"],
        messages=conversation.messages,
        stream=payload.get("stream") is True,
        tools=tools or None,
        format=_format(payload.get("text")),
        sampling=sampling,
        include_usage=True,
        think=_think(payload.get("reasoning")),
        think_optional=True,
        tool_choice=choice,
        forced_tool=forced,
        parallel_tool_calls=payload.get("parallel_tool_calls"),
    )


def input_items(raw: Any) -> list[dict[str, Any]]:
    """``input`` as a list of items: a string is one user message."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
        raise BadRequest("invalid request: input must be a string or a list of items")
    for index, item in enumerate(raw):
        if not isinstance(item.get("id", ""), str):  # ids name items: they are looked up
            raise BadRequest(f"invalid request: input.{index}.id must be a string")
    return raw


def conversation_items(
    payload: dict[str, Any],
    history: list[dict[str, Any]] | None,
    response: dict[str, Any],
    referenced: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """What to store with a response: the conversation's items up to and including its
    output, so a later ``previous_response_id`` resolves in one read (instructions are
    not carried over, as OpenAI does not carry them)."""
    items = _resolved(input_items(payload.get("input")), history or [], referenced)
    return items + list(response.get("output") or [])


def references(payload: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """The ids the input's ``item_reference``s name that neither the history nor an earlier
    item of the input holds: items of other stored responses."""
    known = {i.get("id") for i in history}
    wanted: list[str] = []
    for item in input_items(payload.get("input")):
        name = item.get("id")
        if item.get("type") == "item_reference" and isinstance(name, str):
            if name not in known and name not in wanted:
                wanted.append(name)
        else:
            known.add(name)
    return wanted


def _resolved(
    items: list[dict[str, Any]],
    history: list[dict[str, Any]],
    referenced: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The history, then the items, each ``item_reference`` replaced by the item it names."""
    known = dict(referenced or {})
    known.update((i["id"], i) for i in history if isinstance(i.get("id"), str))
    out = list(history)
    for item in items:
        if item.get("type") == "item_reference":
            if item.get("id") not in known:
                raise BadRequest(f"the item_reference '{item.get('id')}' names no earlier item")
            item = known[item["id"]]
        elif isinstance(item.get("id"), str):
            known[item["id"]] = item
        out.append(item)
    return out


def _think(reasoning: Any) -> bool | str | None:
    """``reasoning.effort`` as Ollama's ``think``, as Ollama's own Responses API reads it."""
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is None:
        return None
    if effort == "none":
        return False
    if effort not in EFFORTS:
        raise BadRequest(f"invalid request: unknown reasoning effort '{effort}'")
    return EFFORTS[effort]


def _format(text: Any) -> Any:
    """``text.format`` as the chat ``format``: a JSON schema, "json", or None for text."""
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind is None or kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = fmt.get("schema")  # type: ignore[union-attr]
        if not isinstance(schema, dict):
            raise BadRequest("invalid request: text.format json_schema needs a schema object")
        return schema
    raise BadRequest(f"invalid request: unknown text.format type '{kind}'")
