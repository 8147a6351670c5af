"""Ollama's chat and generate requests, to and from ``cortex.chat.ChatRequest``."""

from __future__ import annotations

from typing import Any, Literal

from ...chat import ChatRequest, Message, ToolCall
from ...errors import BadRequest

# Ollama option -> OpenAI-style sampling key (see the README's translation table).
OPTIONS_TO_SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "seed": "seed",
    "stop": "stop",
    "num_predict": "max_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "repeat_penalty": "repeat_penalty",
}
SAMPLING_TO_OPTIONS = {v: k for k, v in OPTIONS_TO_SAMPLING.items()}

Shape = Literal["chat", "generate"]


def chat_request(payload: dict[str, Any]) -> ChatRequest:
    """A validated ``/api/chat`` body, in no dialect."""
    return ChatRequest(
        model=payload["model"],
        messages=[_message(m) for m in payload.get("messages") or []],
        stream=payload.get("stream") is not False,
        tools=payload.get("tools") or None,
        format=_format(payload.get("format")),
        sampling=_sampling(payload.get("options")),
        include_usage=True,
        think=_think(payload.get("think")),
        logprobs=payload.get("logprobs") is True,
        top_logprobs=payload.get("top_logprobs"),
    )


def _think(think: Any) -> bool | str | None:
    return think if isinstance(think, bool | str) else None


def generate_request(payload: dict[str, Any]) -> ChatRequest:
    """A validated ``/api/generate`` body: a system and a user turn, or a raw prompt."""
    prompt = payload.get("prompt") or ""
    messages = []
    if payload.get("system"):
        messages.append(Message("system", payload["system"]))
    messages.append(Message("user", prompt, images=list(payload.get("images") or [])))
    return ChatRequest(
        model=payload["model"],
        messages=messages,
        stream=payload.get("stream") is not False,
        format=_format(payload.get("format")),
        sampling=_sampling(payload.get("options")),
        include_usage=True,
        raw_prompt=prompt if payload.get("raw") else None,
        think=_think(payload.get("think")),
        logprobs=payload.get("logprobs") is True,
        top_logprobs=payload.get("top_logprobs"),
    )


def _message(raw: dict[str, Any]) -> Message:
    try:
        calls = [tool_call(call) for call in raw.get("tool_calls") or []]
    except ValueError as exc:
        raise BadRequest(f"invalid request: messages.tool_calls: {exc}") from None
    call_id = raw.get("tool_call_id")
    return Message(
        role=raw["role"],
        content=raw.get("content") or "",
        images=list(raw.get("images") or []),
        tool_calls=calls,
        tool_call_id=call_id if isinstance(call_id, str) else None,
        name=raw.get("tool_name"),
    )


def tool_call(raw: Any) -> ToolCall:
    """One of Ollama's ``tool_calls``; ValueError says what is wrong with it."""
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError("each call needs a function with a name")
    arguments = function.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise ValueError("function.arguments must be an object")
    call_id = raw.get("id")
    return ToolCall(function["name"], arguments, call_id if isinstance(call_id, str) else None)


def _format(value: Any) -> Literal["json"] | dict[str, Any] | None:
    if value == "json":
        return "json"
    return value if isinstance(value, dict) else None


def _sampling(options: dict[str, Any] | None) -> dict[str, Any]:
    sampling = {
        OPTIONS_TO_SAMPLING[k]: v for k, v in (options or {}).items() if k in OPTIONS_TO_SAMPLING
    }
    limit = sampling.get("max_tokens")
    if isinstance(limit, int) and limit <= 0:  # Ollama's -1 (no limit), -2 (fill the context)
        del sampling["max_tokens"]  # no limit, in every other dialect
    return sampling


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The ``/api/chat`` body for an Ollama upstream (always streamed; see translate.py)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_wire_message(m) for m in request.messages],
        "stream": True,
    }
    options = {
        SAMPLING_TO_OPTIONS[k]: v for k, v in request.sampling.items() if k in SAMPLING_TO_OPTIONS
    }
    if options:
        body["options"] = options
    if request.tools and request.tool_choice != "none":
        if request.tool_choice == "required":
            raise BadRequest(
                "tool_choice: this model's server is Ollama, which cannot be made to call a "
                "tool; leave tool_choice out or set it to auto"
            )
        body["tools"] = request.tools
    if request.format is not None:
        body["format"] = request.format
    if request.think is not None:
        body["think"] = request.think
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs:
            body["top_logprobs"] = request.top_logprobs
    return body


def generate_body(request: ChatRequest) -> dict[str, Any]:
    """The ``/api/generate`` body for a raw prompt (always streamed): as it is, or, with a
    suffix, through the model's template, which fills in the middle."""
    body: dict[str, Any] = {"model": request.model, "prompt": request.raw_prompt or ""}
    if request.suffix is not None:
        body["suffix"] = request.suffix
    else:
        body["raw"] = True
    body["stream"] = True
    options = {
        SAMPLING_TO_OPTIONS[k]: v for k, v in request.sampling.items() if k in SAMPLING_TO_OPTIONS
    }
    if options:
        body["options"] = options
    return body


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.thinking:
        wire["thinking"] = message.thinking
    if message.images:
        wire["images"] = message.images
    if message.tool_calls:
        wire["tool_calls"] = [wire_call(c, i) for i, c in enumerate(message.tool_calls)]
    if message.name:
        wire["tool_name"] = message.name
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def wire_call(call: ToolCall, index: int) -> dict[str, Any]:
    """Ollama's ``api.ToolCall``: its id when known, its index in the answer."""
    function = {"index": index, "name": call.name, "arguments": call.arguments}
    return {"id": call.id, "function": function} if call.id else {"function": function}
