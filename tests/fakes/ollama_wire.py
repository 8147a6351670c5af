"""Byte-exact builders for Ollama's HTTP/NDJSON wire format (as produced by Go + gin)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
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


def chat_final(
    model: str, created_at: str, eval_count: int, content: str = "", done_reason: str = "stop"
) -> dict[str, Any]:
    """api.ChatResponse with done=true (the last stream line, or the whole non-stream body)."""
    body: dict[str, Any] = {
        "model": model,
        "created_at": created_at,
        "message": {"role": "assistant", "content": content},
    }
    if done_reason:
        body["done_reason"] = done_reason
    body["done"] = True
    body.update(metrics(eval_count))
    return body


def generate_final(
    model: str, created_at: str, eval_count: int, content: str = "", done_reason: str = "stop"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "created_at": created_at,
        "response": content,
        "done": True,
    }
    if done_reason:
        body["done_reason"] = done_reason
    body["context"] = list(GENERATE_CONTEXT)
    body.update(metrics(eval_count))
    return body


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


def tags_body(models: list[str]) -> bytes:
    entries = [
        {
            "name": name,
            "model": name,
            "modified_at": "2025-05-30T10:12:43.520736114Z",
            "size": 807_694_464,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "1B",
                "quantization_level": "Q4_K_M",
            },
        }
        for name in models
    ]
    return go_json({"models": entries})


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
