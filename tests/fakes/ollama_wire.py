"""Byte-exact builders for Ollama's HTTP/NDJSON wire format (as produced by Go + gin)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from functools import lru_cache
from http import HTTPStatus
from json.encoder import encode_basestring
from typing import Any

OLLAMA_VERSION = "0.9.0"
DEFAULT_MODEL = "fake-llama:latest"

NDJSON = "application/x-ndjson"
JSON_UTF8 = "application/json; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
TEXT_PLAIN = "text/plain"
TEXT_UTF8 = "text/plain; charset=utf-8"

LAST_CHUNK = b"0\r\n\r\n"
NOT_FOUND_PAGE = b"404 page not found"

# Fixed, plausible numbers so byte-exact comparisons stay deterministic.
LOAD_DURATION = 2_154_458
PROMPT_EVAL_COUNT = 26
PROMPT_EVAL_DURATION = 383_809_000
EVAL_DURATION_PER_TOKEN = 15_000_000
GENERATE_CONTEXT = (128006, 882, 128007, 271)

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def _go_escape(text: str) -> str:
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def go_json(value: Any) -> bytes:
    """Encode like Go's json.Marshal: compact, raw UTF-8, HTML-safe escapes, dict order kept."""
    return _go_escape(_ENCODER.encode(value)).encode()


def go_str(value: str) -> bytes:
    """A single JSON string literal, Go style."""
    return _go_escape(encode_basestring(value)).encode()


def go_time(moment: datetime | None = None) -> str:
    """time.Time's JSON form (RFC 3339, trailing fractional zeros trimmed), in UTC.

    Without an argument uses the current time with nanosecond precision, like Go's time.Now().
    """
    if moment is None:
        seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    else:
        moment = moment.astimezone(UTC)
        seconds, nanos = int(moment.replace(microsecond=0).timestamp()), moment.microsecond * 1000
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{_utc_seconds(seconds)}{frac}Z"


@lru_cache(maxsize=8)
def _utc_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def http_date() -> str:
    return formatdate(usegmt=True)


def metrics(eval_count: int) -> dict[str, int]:
    """The embedded api.Metrics fields; zero values are dropped (omitempty)."""
    eval_duration = eval_count * EVAL_DURATION_PER_TOKEN
    values = {
        "total_duration": LOAD_DURATION + PROMPT_EVAL_DURATION + eval_duration,
        "load_duration": LOAD_DURATION,
        "prompt_eval_count": PROMPT_EVAL_COUNT,
        "prompt_eval_duration": PROMPT_EVAL_DURATION,
        "eval_count": eval_count,
        "eval_duration": eval_duration,
    }
    return {key: value for key, value in values.items() if value}


def stream_line_maker(model: str, chat: bool) -> Callable[[str, str], bytes]:
    """Builds non-final stream lines: make(created_at, token) -> one NDJSON line."""
    head = b'{"model":' + go_str(model) + b',"created_at":'
    if chat:
        mid, tail = b',"message":{"role":"assistant","content":', b'},"done":false}\n'
    else:
        mid, tail = b',"response":', b',"done":false}\n'

    last_stamp, start = "", b""

    def make(created_at: str, token: str) -> bytes:
        nonlocal last_stamp, start
        if created_at != last_stamp:
            last_stamp, start = created_at, head + go_str(created_at) + mid
        return b"".join((start, go_str(token), tail))

    return make


def chat_line(model: str, created_at: str, content: str) -> bytes:
    return stream_line_maker(model, chat=True)(created_at, content)


def generate_line(model: str, created_at: str, content: str) -> bytes:
    return stream_line_maker(model, chat=False)(created_at, content)


def chat_message(
    content: str = "", thinking: str = "", tool_calls: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """api.Message from the assistant: thinking and tool_calls are omitempty."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = [tool_call(call, i) for i, call in enumerate(tool_calls)]
    return message


def tool_call(call: Mapping[str, Any], index: int) -> dict[str, Any]:
    """api.ToolCall: an id, and the call's index in the answer inside its function."""
    function = {"index": index, "name": call["name"], "arguments": go_map(call["arguments"])}
    return {"id": call.get("id", f"call_{index:08x}"), "function": function}


def go_map(value: Any) -> Any:
    """Go marshals map[string]any with sorted keys (structs keep field order)."""
    if isinstance(value, Mapping):
        return {key: go_map(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [go_map(item) for item in value]
    return value


def chat_message_line(model: str, created_at: str, message: dict[str, Any]) -> bytes:
    """A non-final chat line with an arbitrary message (thinking, tool calls)."""
    return go_json({"model": model, "created_at": created_at, "message": message, "done": False})


def generate_thinking_line(model: str, created_at: str, thinking: str) -> bytes:
    line = {"model": model, "created_at": created_at, "response": "", "thinking": thinking}
    return go_json({**line, "done": False})


def chat_final(
    model: str,
    created_at: str,
    eval_count: int,
    content: str = "",
    done_reason: str = "stop",
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """api.ChatResponse with done=true (the last stream line, or the whole non-stream body)."""
    body: dict[str, Any] = {
        "model": model,
        "created_at": created_at,
        "message": message or chat_message(content),
    }
    if done_reason:
        body["done_reason"] = done_reason
    body["done"] = True
    body.update(metrics(eval_count))
    return body


def generate_final(
    model: str,
    created_at: str,
    eval_count: int,
    content: str = "",
    done_reason: str = "stop",
    thinking: str = "",
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "created_at": created_at, "response": content}
    if thinking:
        body["thinking"] = thinking
    body["done"] = True
    if done_reason:
        body["done_reason"] = done_reason
    body["context"] = list(GENERATE_CONTEXT)
    body.update(metrics(eval_count))
    return body


def load_body(model: str, created_at: str, chat: bool, reason: str = "load") -> bytes:
    """The answer to an empty chat / generate: the model was (un)loaded, nothing generated."""
    if chat:
        message = {"role": "assistant", "content": ""}
        return go_json(
            {"model": model, "created_at": created_at, "message": message, "done_reason": reason}
            | {"done": True}
        )
    head = {"model": model, "created_at": created_at, "response": ""}
    return go_json(head | {"done": True, "done_reason": reason})


def error_body(message: str) -> bytes:
    """gin.H{"error": message} as written by c.JSON (no trailing newline)."""
    return go_json({"error": message})


def error_line(message: str) -> bytes:
    """Mid-stream error, written by json.Encoder.Encode (so newline-terminated)."""
    return error_body(message) + b"\n"


def model_not_found(model: str) -> bytes:
    # Go formats the name with %q; a JSON string literal matches it for ordinary names.
    return error_body(
        f"model {json.dumps(model, ensure_ascii=False)} not found, try pulling it first"
    )


MODIFIED_AT = "2025-05-30T10:12:43.520736114Z"
MODEL_SIZE = 807_694_464
CONTEXT_LENGTH = 4096
KEEP_ALIVE_SECONDS = 300
CAPABILITIES = ("completion", "tools")


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def model_details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "1B",
        "quantization_level": "Q4_K_M",
    }


def tags_body(models: list[str]) -> bytes:
    entries = [
        {
            "name": name,
            "model": name,
            "modified_at": MODIFIED_AT,
            "size": MODEL_SIZE,
            "digest": digest(name),
            "details": model_details(),
        }
        for name in models
    ]
    return go_json({"models": entries})


def ps_body(running: list[str], expires_at: str) -> bytes:
    """GET /api/ps: api.ProcessResponse (context_length is in newer servers only)."""
    entries = [
        {
            "name": name,
            "model": name,
            "size": MODEL_SIZE,
            "digest": digest(name),
            "details": model_details(),
            "expires_at": expires_at,
            "size_vram": MODEL_SIZE,
            "context_length": CONTEXT_LENGTH,
        }
        for name in running
    ]
    return go_json({"models": entries})


_TEMPLATE = (
    "<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"
)
_LICENSE = "Fake Model License: for tests only."
_PARAMETERS = 'stop                           "<|eot_id|>"'


def show_body(name: str) -> bytes:
    """POST /api/show: api.ShowResponse (omitempty fields left out; map keys sorted)."""
    modelfile = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {name}\n\n"
        f"FROM /usr/share/ollama/.ollama/models/blobs/sha256-{digest(name)}\n"
        f'TEMPLATE """{_TEMPLATE}"""\n'
        "PARAMETER stop <|eot_id|>\n"
        f'LICENSE """{_LICENSE}"""\n'
    )
    model_info = {
        "general.architecture": "llama",
        "general.file_type": 15,
        "general.parameter_count": 1_235_814_432,
        "general.quantization_version": 2,
        "llama.attention.head_count": 32,
        "llama.attention.head_count_kv": 8,
        "llama.block_count": 16,
        "llama.context_length": 131_072,
        "llama.embedding_length": 2048,
        "llama.vocab_size": 128_256,
        "tokenizer.ggml.model": "gpt2",
    }
    return go_json(
        {
            "license": _LICENSE,
            "modelfile": modelfile,
            "parameters": _PARAMETERS,
            "template": _TEMPLATE,
            "details": model_details(),
            "model_info": go_map(model_info),
            "capabilities": list(CAPABILITIES),
            "modified_at": MODIFIED_AT,
        }
    )


def show_not_found(model: str) -> bytes:
    return error_body(f"model '{model}' not found")


def embed_body(model: str, vectors: list[list[float]], prompt_tokens: int) -> bytes:
    """POST /api/embed: api.EmbedResponse (no metrics for empty input, like Ollama)."""
    body: dict[str, Any] = {"model": model, "embeddings": vectors}
    if vectors:
        body |= {
            "total_duration": LOAD_DURATION + PROMPT_EVAL_DURATION,
            "load_duration": LOAD_DURATION,
            "prompt_eval_count": prompt_tokens,
        }
    return go_json(body)


def embeddings_body(vector: list[float]) -> bytes:
    """POST /api/embeddings (legacy): api.EmbeddingResponse."""
    return go_json({"embedding": vector})


def version_body(version: str = OLLAMA_VERSION) -> bytes:
    return go_json({"version": version})


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk, framed like Go's chunkWriter (lower-case hex size)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def response_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    """Status line plus headers, in the order Go's net/http writes them."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = f"status code {status}"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
