"""OpenAI's chat requests and embeddings, to and from the dialect-free shapes of ``cortex.chat``."""

from __future__ import annotations

import array
import base64
import sys
from typing import Any

import orjson

from ...chat import ChatRequest, Message, ToolCall
from ...errors import BadRequest
from ...json_depth import MAX_JSON_DEPTH, too_deep

SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    # Not in OpenAI's API, but llama-server and vLLM accept them.
    "top_k",
    "min_p",
    "repeat_penalty",
)
IMAGE_PREFIXES = {
    "/9j/": "image/jpeg",
    "iVBOR": "image/png",
    "R0lG": "image/gif",
    "UklG": "image/webp",
}


def chat_request(payload: dict[str, Any]) -> ChatRequest:
    """A validated ``/v1/chat/completions`` body, in no dialect."""
    if payload.get("n", 1) != 1:
        raise BadRequest("n other than 1 is not supported")
    sampling = {k: payload[k] for k in SAMPLING_KEYS if payload.get(k) is not None}
    if isinstance(sampling.get("stop"), str):
        sampling["stop"] = [sampling["stop"]]
    max_tokens = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if max_tokens is not None:
        sampling["max_tokens"] = max_tokens
    stream_options = payload.get("stream_options") or {}
    return ChatRequest(
        model=payload["model"],
        messages=_messages(payload["messages"]),
        stream=payload.get("stream") is True,
        tools=payload.get("tools") or None,
        format=_format(payload.get("response_format")),
        sampling=sampling,
        include_usage=bool(stream_options.get("include_usage")),
        think=_think(payload.get("reasoning_effort")),
        logprobs=payload.get("logprobs") is True,
        top_logprobs=payload.get("top_logprobs"),
        parallel_tool_calls=payload.get("parallel_tool_calls"),
        **_tool_choice(payload.get("tool_choice")),
    )


def completion_request(payload: dict[str, Any]) -> ChatRequest:
    """A validated ``/v1/completions`` body: a prompt sent as it is (no chat template), with
    an optional ``suffix`` to fill in the middle."""
    for field, limit in (("n", 1), ("best_of", 1)):
        if payload.get(field, 1) != limit:
            raise BadRequest(f"{field} other than 1 is not supported")
    if payload.get("echo"):
        raise BadRequest("echo is not supported; leave it out")
    prompt = payload.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequest("prompt: one text prompt per request (a list of one string)")
        prompt = prompt[0]
    sampling = {k: payload[k] for k in SAMPLING_KEYS if payload.get(k) is not None}
    if isinstance(sampling.get("stop"), str):
        sampling["stop"] = [sampling["stop"]]
    if payload.get("max_tokens") is not None:
        sampling["max_tokens"] = payload["max_tokens"]
    stream_options = payload.get("stream_options") or {}
    suffix = payload.get("suffix")
    return ChatRequest(
        model=payload["model"],
        messages=[],
        stream=payload.get("stream") is True,
        sampling=sampling,
        include_usage=bool(stream_options.get("include_usage")),
        raw_prompt=prompt if isinstance(prompt, str) else "",
        suffix=suffix if isinstance(suffix, str) and suffix else None,
    )


def _tool_choice(choice: Any) -> dict[str, Any]:
    """``tool_choice``: a mode, or one function the answer must call."""
    if choice in ("auto", "none", "required"):
        return {"tool_choice": choice}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"tool_choice": "required", "forced_tool": function["name"]}
    if choice is None:
        return {}
    raise BadRequest("invalid request: tool_choice must be auto, none, required or a function")


# OpenAI's efforts as Ollama's think, as Ollama's own /v1 reads them: the tiers beyond
# either end of Ollama's are clamped to its nearest ("minimal" to "low", "xhigh" to "max").
EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}
# Ollama's think as an effort OpenAI-compatible servers accept (vLLM refuses "none"; thinking
# off is said with chat_template_kwargs instead).
THINK_TO_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


def _think(effort: Any) -> bool | str | None:
    """OpenAI's ``reasoning_effort`` as Ollama's ``think``."""
    return EFFORT_TO_THINK.get(effort) if isinstance(effort, str) else None


def _messages(raw: list[dict[str, Any]]) -> list[Message]:
    messages = []
    tool_names: dict[str, str] = {}
    for m in raw:
        text, images = _content(m.get("content"))
        calls = [_tool_call(c) for c in m.get("tool_calls") or []]
        tool_names.update({c.id: c.name for c in calls if c.id})
        role = "system" if m["role"] == "developer" else m["role"]
        call_id = m.get("tool_call_id")
        messages.append(
            Message(
                role=role,
                content=text,
                images=images,
                tool_calls=calls,
                tool_call_id=call_id,
                name=m.get("name") or (tool_names.get(call_id) if call_id else None),
            )
        )
    return messages


def _content(content: Any) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts, images = [], []
    for part in content:
        if part.get("type") == "text":
            text = part.get("text", "")
            if not isinstance(text, str):
                raise BadRequest("invalid request: a text part's text must be a string")
            texts.append(text)
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
                raise BadRequest("images must be given as base64 data: URLs")
            images.append(url.split(";base64,", 1)[1])
    return "".join(texts), images


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = raw.get("function") or {}
    if not isinstance(function, dict) or not isinstance(function.get("name", ""), str):
        raise BadRequest("invalid request: a tool call needs a function with a name")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise BadRequest("tool call arguments must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise BadRequest("tool call arguments must be a JSON object")
    if too_deep(parsed):
        raise BadRequest(f"tool call arguments are nested more than {MAX_JSON_DEPTH} levels deep")
    call_id = raw.get("id")
    return ToolCall(function.get("name", ""), parsed, call_id if isinstance(call_id, str) else None)


def _format(response_format: Any) -> Any:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return "json"
    if response_format.get("type") == "json_schema":
        json_schema = response_format.get("json_schema")
        schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
        return schema if isinstance(schema, dict) and schema else "json"
    return None


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The body for an OpenAI-compatible upstream (always streamed, usage included)."""
    body: dict[str, Any] = {"model": request.model}
    if request.raw_prompt is not None:
        body["prompt"] = request.raw_prompt
    else:
        body["messages"] = _wire_messages(request.messages)
    body.update(stream=True, stream_options={"include_usage": True})
    body.update(request.sampling)
    if request.tools:
        body["tools"] = request.tools
        if request.forced_tool is not None:
            body["tool_choice"] = {"type": "function", "function": {"name": request.forced_tool}}
        elif request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.think is False:
        body["chat_template_kwargs"] = {"enable_thinking": False}
    elif isinstance(request.think, str) and request.think in THINK_TO_EFFORT:
        body["reasoning_effort"] = THINK_TO_EFFORT[request.think]
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs:
            body["top_logprobs"] = request.top_logprobs
    if request.format == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(request.format, dict):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.format},
        }
    return body


def _wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    pending_ids: list[str] = []  # results without an id answer the calls in order
    for m in messages:
        out: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.images:
            out["content"] = [{"type": "text", "text": m.content}] + [
                {"type": "image_url", "image_url": {"url": _data_url(image)}} for image in m.images
            ]
        if m.tool_calls:
            ids = [c.id or f"call_{len(wire)}_{i}" for i, c in enumerate(m.tool_calls)]
            pending_ids = list(ids)
            out["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
                }
                for call_id, c in zip(ids, m.tool_calls, strict=True)
            ]
        if m.role == "tool":
            call_id = m.tool_call_id or (pending_ids[0] if pending_ids else "call_0")
            if call_id in pending_ids:
                pending_ids.remove(call_id)
            out["tool_call_id"] = call_id
        wire.append(out)
    return wire


def _data_url(image: str) -> str:
    mime = next((t for p, t in IMAGE_PREFIXES.items() if image.startswith(p)), "image/png")
    return f"data:{mime};base64,{image}"


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32s."""
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
