"""Byte-exact builders for OpenAI's HTTP/SSE wire format (chat and text completions,
models, embeddings, errors), as served by OpenAI and by llama-server / vLLM / LM Studio.

JSON is compact with raw UTF-8 and no HTML escaping; SSE events are `data: <json>\\n\\n`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from itertools import pairwise
from json.encoder import encode_basestring
from typing import Any

from tests.fakes import vectors

SSE = "text/event-stream; charset=utf-8"
JSON = "application/json"
FINGERPRINT = "fp_fake"
OWNED_BY = "fake"
MODEL_CREATED = 1_748_599_963  # 2025-05-30T10:12:43Z, the fake models' modified_at
DONE = b"data: [DONE]\n\n"
PROMPT_TOKENS = 26  # same as Ollama's prompt_eval_count

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


def jstr(text: str) -> bytes:
    return encode_basestring(text).encode()


def event(value: Any) -> bytes:
    return b"data: " + dumps(value) + b"\n\n"


# ---- errors ------------------------------------------------------------------------------


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def invalid_api_key() -> bytes:
    return error_body("Incorrect API key provided", code="invalid_api_key")


def model_not_found(model: str) -> bytes:
    return error_body(f"The model `{model}` does not exist", code="model_not_found")


def bad_json() -> bytes:
    return error_body(
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        "but what was sent was not valid JSON.)"
    )


def missing_param(name: str) -> bytes:
    return error_body(
        f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
    )


def invalid_url(method: str, path: str) -> bytes:
    return error_body(f"Invalid URL ({method} {path})")


def server_error(message: str) -> bytes:
    return error_body(message, "server_error")


def stream_error_event(message: str) -> bytes:
    """An in-band error event, after which the stream just ends."""
    return event({"error": {"message": message, "type": "server_error", "code": None}})


# ---- streaming chunks ------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Chunks:
    """Builds one response's SSE events: `chat.completion.chunk`s (chat=True) or legacy
    `text_completion` chunks. With include_usage every chunk carries "usage":null and
    `usage_event` adds the final choices-less one."""

    def __init__(self, id_: str, created: int, model: str, chat: bool, include_usage: bool) -> None:
        obj = b"chat.completion.chunk" if chat else b"text_completion"
        head = b'data: {"id":%b,"object":"%b","created":%d,"model":%b' % (
            jstr(id_),
            obj,
            created,
            jstr(model),
        )
        if chat:
            head += b',"system_fingerprint":' + jstr(FINGERPRINT)
        self.head = head
        self.choice = head + b',"choices":[{"index":0,' + (b'"delta":' if chat else b'"text":')
        self.end = b"]" + (b',"usage":null' if include_usage else b"") + b"}\n\n"

    def _close(self, finish_reason: str | None) -> bytes:
        reason = b"null" if finish_reason is None else jstr(finish_reason)
        return b',"logprobs":null,"finish_reason":' + reason + b"}" + self.end

    def delta(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> bytes:
        """A chat chunk with this delta."""
        return self.choice + dumps(delta) + self._close(finish_reason)

    def content(self, token: str) -> bytes:
        return self.choice + b'{"content":' + jstr(token) + b"}" + self._close(None)

    def text(self, token: str, finish_reason: str | None = None) -> bytes:
        """A legacy completion chunk."""
        return self.choice + jstr(token) + self._close(finish_reason)

    def usage_event(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        tail = b',"choices":[],"usage":' + dumps(usage(prompt_tokens, completion_tokens))
        return self.head + tail + b"}\n\n"


def tool_call_id(index: int, name: str) -> str:
    return "call_" + hashlib.sha256(f"{index}:{name}".encode()).hexdigest()[:24]


def tool_arguments(call: Mapping[str, Any]) -> str:
    return json.dumps(call["arguments"], ensure_ascii=False, separators=(",", ":"))


def fragments(text: str) -> list[str]:
    """Split a tool call's arguments string in 2-3 pieces, as a model streams it."""
    if len(text) < 2:
        return [text]
    parts = 3 if len(text) >= 3 else 2
    cuts = [0, *(len(text) * i // parts for i in range(1, parts)), len(text)]
    return [text[lo:hi] for lo, hi in pairwise(cuts)]


def tool_call_deltas(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The deltas streaming `calls`: per call a header with the id, name and empty
    arguments, then the arguments in fragments."""
    deltas: list[dict[str, Any]] = []
    for i, call in enumerate(calls):
        header = {
            "index": i,
            "id": tool_call_id(i, call["name"]),
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        deltas.append({"tool_calls": [header]})
        deltas += [
            {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
            for piece in fragments(tool_arguments(call))
        ]
    return deltas


# ---- whole responses -------------------------------------------------------------------


def chat_message(
    content: str, reasoning: str = "", tool_calls: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": tool_call_id(i, call["name"]),
                "type": "function",
                "function": {"name": call["name"], "arguments": tool_arguments(call)},
            }
            for i, call in enumerate(tool_calls)
        ]
    message["refusal"] = None
    return message


def chat_completion(
    id_: str,
    created: int,
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    completion_tokens: int,
) -> bytes:
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    return dumps(
        {
            "id": id_,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(PROMPT_TOKENS, completion_tokens),
            "system_fingerprint": FINGERPRINT,
        }
    )


def text_completion(
    id_: str, created: int, model: str, text: str, finish_reason: str, completion_tokens: int
) -> bytes:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    return dumps(
        {
            "id": id_,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(PROMPT_TOKENS, completion_tokens),
        }
    )


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": OWNED_BY}


def models_body(names: list[str], max_model_len: int | None = None) -> bytes:
    """``/v1/models``; vLLM adds each model's ``max_model_len``."""
    extra = {} if max_model_len is None else {"max_model_len": max_model_len}
    return dumps({"object": "list", "data": [model_object(name) | extra for name in names]})


def embeddings_body(model: str, texts: list[str], dimensions: int, as_base64: bool) -> bytes:
    data = []
    for i, text in enumerate(texts):
        vector = vectors.embedding(text, dimensions)
        data.append(
            {
                "object": "embedding",
                "index": i,
                "embedding": vectors.to_base64(vector) if as_base64 else vector,
            }
        )
    tokens = sum(vectors.token_count(text) for text in texts)
    return dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
