"""Ollama's wire format, to and from the dialect-free shapes of ``cortex.chat``."""

from __future__ import annotations

import time
from typing import Any, Literal

from ..chat import ChatRequest, Delta, FinishReason, Message, ToolCall, Usage
from ..errors import BadRequest, UpstreamProtocolError

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
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
UNEXPECTED_SHAPE = "the model server sent a message of an unexpected shape"

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
    )


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
    )


def _message(raw: dict[str, Any]) -> Message:
    try:
        calls = [_tool_call(call) for call in raw.get("tool_calls") or []]
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


def _tool_call(raw: Any) -> ToolCall:
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
    return {
        OPTIONS_TO_SAMPLING[k]: v for k, v in (options or {}).items() if k in OPTIONS_TO_SAMPLING
    }


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
    if request.tools:
        body["tools"] = request.tools
    if request.format is not None:
        body["format"] = request.format
    if request.think is not None:
        body["think"] = request.think
    return body


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.images:
        wire["images"] = message.images
    if message.tool_calls:
        wire["tool_calls"] = [_wire_call(c, i) for i, c in enumerate(message.tool_calls)]
    if message.name:
        wire["tool_name"] = message.name
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _wire_call(call: ToolCall, index: int) -> dict[str, Any]:
    """Ollama's ``api.ToolCall``: its id when known, its index in the answer."""
    function = {"index": index, "name": call.name, "arguments": call.arguments}
    return {"id": call.id, "function": function} if call.id else {"function": function}


class OllamaParser:
    """Reads Ollama's chat or generate lines into deltas."""

    def __init__(self) -> None:
        self._called_tools = False

    def parse(self, line: dict[str, Any]) -> Delta:
        """The line's delta; UpstreamProtocolError if it is not shaped as Ollama's are."""
        message = line.get("message") or {}
        raw_calls = (message.get("tool_calls") or []) if isinstance(message, dict) else None
        if not isinstance(raw_calls, list):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        try:
            calls = [_tool_call(c) for c in raw_calls]
        except ValueError:
            raise UpstreamProtocolError(UNEXPECTED_SHAPE) from None
        self._called_tools = self._called_tools or bool(calls)
        content = message.get("content") or line.get("response") or ""
        thinking = message.get("thinking") or line.get("thinking") or ""
        if not isinstance(content, str) or not isinstance(thinking, str):
            raise UpstreamProtocolError(UNEXPECTED_SHAPE)
        delta = Delta(content=content, thinking=thinking, tool_calls=calls)
        if line.get("done") is True:
            delta.finish_reason = self._finish_reason(line.get("done_reason"))
            delta.usage = Usage(
                _count(line.get("prompt_eval_count")), _count(line.get("eval_count"))
            )
            delta.durations = {k: line[k] for k in DURATIONS if isinstance(line.get(k), int)}
        return delta

    def _finish_reason(self, done_reason: Any) -> FinishReason:
        if self._called_tools:
            return "tool_calls"
        return "length" if done_reason == "length" else "stop"


def _count(value: Any) -> int | None:
    """A token count as reported, if it is one."""
    return value if type(value) is int and value >= 0 else None


def created_at() -> str:
    return Stamps().now()


class Stamps:
    """Ollama's ``created_at`` (RFC 3339, nanosecond digits, UTC).

    Formatting the date was a third of a translated stream's CPU (profiled), so
    the part down to the second is formatted once per second.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        second, micro = divmod(time.time_ns() // 1000, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        return f"{self._prefix}{micro:06d}000Z"


class OllamaEncoder:
    """Writes deltas as Ollama chat or generate objects, with truthful counts and timings.

    When the upstream reports no timings, they are measured here: total from the
    request, prompt evaluation until the first piece, evaluation after it.
    """

    def __init__(self, model: str, shape: Shape) -> None:
        self._model = model
        self._shape = shape
        self._started = time.monotonic_ns()
        self._stamps = Stamps()
        self._first_piece: int | None = None
        self._pieces = 0
        self._calls = 0  # tool calls written so far: each new one takes the next index

    def piece(self, delta: Delta) -> dict[str, Any]:
        if self._first_piece is None:
            self._first_piece = time.monotonic_ns()
        if delta.content or delta.thinking:
            self._pieces += 1
        out: dict[str, Any] = {"model": self._model, "created_at": self._stamps.now()}
        if self._shape == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": delta.content}
            if delta.thinking:
                message["thinking"] = delta.thinking
            if delta.tool_calls:
                first, self._calls = self._calls, self._calls + len(delta.tool_calls)
                message["tool_calls"] = [
                    _wire_call(c, i) for i, c in enumerate(delta.tool_calls, start=first)
                ]
            out["message"] = message
        else:
            out["response"] = delta.content
            if delta.thinking:
                out["thinking"] = delta.thinking
        out["done"] = False
        return out

    def final(self, last: Delta, whole: Delta | None = None) -> dict[str, Any]:
        """The closing object; ``whole`` carries the full answer for a non-streaming reply."""
        out = self.piece(whole or Delta())
        del out["done"]
        now = time.monotonic_ns()
        first = self._first_piece or now
        usage = last.usage or Usage()
        durations = last.durations or {
            "total_duration": now - self._started,
            "load_duration": 0,
            "prompt_eval_duration": first - self._started,
            "eval_duration": now - first,
        }
        metrics = {
            "total_duration": durations.get("total_duration", now - self._started),
            "load_duration": durations.get("load_duration", 0),
            "prompt_eval_count": usage.prompt_tokens or 0,
            "prompt_eval_duration": durations.get("prompt_eval_duration", 0),
            "eval_count": self._pieces
            if usage.completion_tokens is None
            else usage.completion_tokens,
            "eval_duration": durations.get("eval_duration", 0),
        }
        out.update(done_reason="length" if last.finish_reason == "length" else "stop", done=True)
        out.update((k, v) for k, v in metrics.items() if v)  # Ollama omits unknown (zero) metrics
        return out
