"""OpenAI's chat wire format, to and from the dialect-free shapes of ``cortex.chat``."""

from __future__ import annotations

import array
import base64
import secrets
import sys
import time
from typing import Any

import orjson

from ..chat import ChatRequest, Delta, FinishReason, Message, ToolCall, Usage
from ..errors import BadRequest, UpstreamProtocolError
from ..json_depth import MAX_JSON_DEPTH, too_deep

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
UNEXPECTED_SHAPE = "the model server sent an event of an unexpected shape"
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
    )


def _think(effort: Any) -> bool | str | None:
    """OpenAI's ``reasoning_effort`` as Ollama's ``think``, as Ollama's own ``/v1`` reads it."""
    if effort is None:
        return None
    if effort == "none":
        return False
    return "low" if effort == "minimal" else str(effort)


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
    pending_ids: list[str] = []  # Ollama's tool results carry no ids: answer calls in order
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
            out["tool_call_id"] = m.tool_call_id or (
                pending_ids.pop(0) if pending_ids else "call_0"
            )
        wire.append(out)
    return wire


def _data_url(image: str) -> str:
    mime = next((t for p, t in IMAGE_PREFIXES.items() if image.startswith(p)), "image/png")
    return f"data:{mime};base64,{image}"


class OpenAIParser:
    """Reads OpenAI chat (or text completion) stream events into deltas.

    Tool call fragments are joined by index and handed on whole; the finish
    reason is held back until ``[DONE]`` so the usage that follows it rides along.
    """

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def parse(self, event: dict[str, Any]) -> Delta | None:
        """The event's delta, if it carries one; UpstreamProtocolError if it is misshapen."""
        usage = event.get("usage")
        if isinstance(usage, dict):
            self._usage = Usage(
                _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
            )
        choices = event.get("choices") or []
        if not isinstance(choices, list):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        if not choices:
            return None
        choice = choices[0]
        if not isinstance(choice, dict) or not isinstance(delta := choice.get("delta") or {}, dict):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        fragments = delta.get("tool_calls") or []
        if not isinstance(fragments, list):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        for fragment in fragments:
            self._join(fragment)
        if choice.get("finish_reason"):
            reason = choice["finish_reason"]
            self._finish = reason if reason in ("length", "tool_calls") else "stop"
        content = delta.get("content") or choice.get("text") or ""
        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
        if not isinstance(content, str) or not isinstance(thinking, str):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        return Delta(content=content, thinking=thinking) if content or thinking else None

    def _join(self, fragment: Any) -> None:
        function = (fragment.get("function") or {}) if isinstance(fragment, dict) else None
        index = fragment.get("index", 0) if isinstance(fragment, dict) else None
        if not isinstance(function, dict) or type(index) is not int:
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        name, arguments, call_id = (
            function.get("name") or "",
            function.get("arguments") or "",
            fragment.get("id"),
        )
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        call = self._calls.setdefault(index, {"name": "", "arguments": ""})
        call["id"] = (call_id if isinstance(call_id, str) else None) or call.get("id")
        call["name"] += name
        call["arguments"] += arguments

    def finish(self) -> Delta:
        """The closing delta: joined tool calls, finish reason and usage."""
        calls = []
        for _, call in sorted(self._calls.items()):
            try:
                arguments = orjson.loads(call["arguments"] or "{}")
            except orjson.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict) or too_deep(arguments):
                arguments = {"_unparsed": call["arguments"]}
            calls.append(ToolCall(call["name"], arguments, call.get("id")))
        reason: FinishReason = "tool_calls" if calls else self._finish or "stop"
        return Delta(tool_calls=calls, finish_reason=reason, usage=self._usage)


def _count(value: Any) -> int | None:
    """A token count as reported, if it is one."""
    return value if type(value) is int and value >= 0 else None


class OpenAIEncoder:
    """Writes deltas as ``chat.completion.chunk`` events, or one ``chat.completion``."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = "chatcmpl-" + secrets.token_hex(12)
        self._created = int(time.time())
        self._sent_role = False
        self._pieces = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def piece(self, delta: Delta) -> bytes:
        out = b""
        if not self._sent_role:
            self._sent_role = True
            out = self._chunk({"role": "assistant", "content": ""})
        if delta.content or delta.thinking:
            self._pieces += 1
            body: dict[str, Any] = {"content": delta.content}
            if delta.thinking:
                body["reasoning_content"] = delta.thinking
            out += self._chunk(body)
        if delta.tool_calls:
            out += self._chunk({"tool_calls": _wire_calls(delta.tool_calls, with_index=True)})
        return out

    def final(self, last: Delta) -> bytes:
        out = self.piece(last) + self._chunk({}, last.finish_reason or "stop")
        if self._include_usage:
            usage = self._usage(last)
            chunk = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
            out += b"data: " + orjson.dumps(chunk) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def whole(self, content: str, thinking: str, last: Delta) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if thinking:
            message["reasoning_content"] = thinking
        if last.tool_calls:
            message["tool_calls"] = _wire_calls(last.tool_calls, with_index=False)
            message["content"] = content or None
        self._pieces = self._pieces or int(bool(content))
        completion = {
            "id": self._id,
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": last.finish_reason or "stop",
                }
            ],
            "usage": self._usage(last),
        }
        return orjson.dumps(completion)

    def _usage(self, last: Delta) -> dict[str, int]:
        usage = last.usage or Usage()
        prompt = usage.prompt_tokens or 0
        completion = (
            usage.completion_tokens if usage.completion_tokens is not None else self._pieces
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


def _wire_calls(calls: list[ToolCall], *, with_index: bool) -> list[dict[str, Any]]:
    wire = []
    for i, call in enumerate(calls):
        item: dict[str, Any] = {
            "id": call.id or f"call_{secrets.token_hex(8)}",
            "type": "function",
            "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
        }
        if with_index:
            item = {"index": i, **item}
        wire.append(item)
    return wire


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32s."""
    packed = array.array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
