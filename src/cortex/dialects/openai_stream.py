"""OpenAI's streamed chat events, read into and written from ``cortex.chat.Delta``."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from ..chat import Delta, FinishReason, ToolCall, Usage
from ..errors import UpstreamProtocolError
from ..json_depth import too_deep

UNEXPECTED_SHAPE = "the model server sent an event of an unexpected shape"


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
        self._calls = 0  # tool calls streamed so far: each new one takes the next index

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
            calls = _wire_calls(delta.tool_calls, first_index=self._calls)
            self._calls += len(calls)
            out += self._chunk({"tool_calls": calls})
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
            message["tool_calls"] = _wire_calls(last.tool_calls)
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


def _wire_calls(calls: list[ToolCall], *, first_index: int | None = None) -> list[dict[str, Any]]:
    """OpenAI's ``tool_calls``; in a stream (``first_index`` given) each has its index."""
    wire = []
    for i, call in enumerate(calls, start=first_index or 0):
        item: dict[str, Any] = {
            "id": call.id or f"call_{secrets.token_hex(8)}",
            "type": "function",
            "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
        }
        if first_index is not None:
            item = {"index": i, **item}
        wire.append(item)
    return wire
