"""Byte-exact builders for Anthropic's Messages wire format: named SSE events, Message
objects, token counts and errors, as Anthropic (and Ollama's, llama-server's and vLLM's
``/v1/messages``) send them.

JSON is compact with raw UTF-8; each event is `event: <type>\\ndata: <json>\\n\\n`, the
ping keeping the spaces Anthropic's has.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tests.fakes.openai_wire import PROMPT_TOKENS, dumps, fragments, tool_arguments

SSE = "text/event-stream; charset=utf-8"
JSON = "application/json"
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
SIGNATURE = "RXF1aXZhbGUgYSB1bmEgZmlybWEgZGUgcGVuc2FtaWVudG8="
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

__all__ = ["JSON", "PING", "PROMPT_TOKENS", "SIGNATURE", "SSE", "fragments"]


def event(value: Mapping[str, Any]) -> bytes:
    return b"event: " + str(value["type"]).encode() + b"\ndata: " + dumps(value) + b"\n\n"


def tool_use_id(index: int, name: str) -> str:
    return "toolu_01" + hashlib.sha256(f"{index}:{name}".encode()).hexdigest()[:22]


# ---- errors ------------------------------------------------------------------------------


def error_body(type_: str, message: str) -> bytes:
    return dumps({"type": "error", "error": {"type": type_, "message": message}})


def error_event(type_: str, message: str) -> bytes:
    return b"event: error\ndata: " + error_body(type_, message) + b"\n\n"


def invalid_request(message: str) -> bytes:
    return error_body("invalid_request_error", message)


def not_found(model: str) -> bytes:
    return error_body("not_found_error", f"model: {model}")


def authentication() -> bytes:
    return error_body("authentication_error", "invalid x-api-key")


# ---- streamed events --------------------------------------------------------------------


def message(
    id_: str, model: str, content: list[Any], stop: str | None, usage: Any
) -> dict[str, Any]:
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def message_start(id_: str, model: str, input_tokens: int = PROMPT_TOKENS) -> bytes:
    usage = {"input_tokens": input_tokens, "output_tokens": 1}
    return event({"type": "message_start", "message": message(id_, model, [], None, usage)})


def block_start(index: int, block: Mapping[str, Any]) -> bytes:
    return event({"type": "content_block_start", "index": index, "content_block": block})


def text_start(index: int) -> bytes:
    return block_start(index, {"type": "text", "text": ""})


def thinking_start(index: int) -> bytes:
    return block_start(index, {"type": "thinking", "thinking": "", "signature": ""})


def tool_use_start(index: int, id_: str, name: str) -> bytes:
    return block_start(index, {"type": "tool_use", "id": id_, "name": name, "input": {}})


def delta(index: int, value: Mapping[str, Any]) -> bytes:
    return event({"type": "content_block_delta", "index": index, "delta": value})


def text_delta(index: int, text: str) -> bytes:
    return delta(index, {"type": "text_delta", "text": text})


def thinking_delta(index: int, thinking: str) -> bytes:
    return delta(index, {"type": "thinking_delta", "thinking": thinking})


def signature_delta(index: int, signature: str = SIGNATURE) -> bytes:
    return delta(index, {"type": "signature_delta", "signature": signature})


def input_json_delta(index: int, partial_json: str) -> bytes:
    return delta(index, {"type": "input_json_delta", "partial_json": partial_json})


def block_stop(index: int) -> bytes:
    return event({"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str, output_tokens: int, stop_sequence: str | None = None) -> bytes:
    return event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": {"output_tokens": output_tokens},
        }
    )


MESSAGE_STOP = event({"type": "message_stop"})


# ---- whole responses -------------------------------------------------------------------


def content(
    text: str, thinking: str = "", tool_calls: tuple[Mapping[str, Any], ...] | None = None
) -> list[dict[str, Any]]:
    """A Message's content blocks: thinking, then text, or tool calls instead of text."""
    blocks: list[dict[str, Any]] = []
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": SIGNATURE})
    if tool_calls:
        for i, call in enumerate(tool_calls):
            input_ = json.loads(tool_arguments(call))
            id_ = tool_use_id(i, call["name"])
            blocks.append({"type": "tool_use", "id": id_, "name": call["name"], "input": input_})
    else:
        blocks.append({"type": "text", "text": text})
    return blocks


def message_body(
    id_: str, model: str, blocks: list[dict[str, Any]], stop_reason: str, output_tokens: int
) -> bytes:
    usage = {"input_tokens": PROMPT_TOKENS, "output_tokens": output_tokens}
    return dumps(message(id_, model, blocks, stop_reason, usage))


def count_tokens_body(input_tokens: int) -> bytes:
    return dumps({"input_tokens": input_tokens})
