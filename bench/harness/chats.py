"""The load generator's requests: a streamed chat in either client dialect, its knobs for the
fake upstream (bench/fake_upstream.py) riding in the model name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

Dialect = Literal["ollama", "openai"]
DIALECTS: tuple[Dialect, ...] = ("ollama", "openai")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    raw: bytes  # the whole HTTP request
    dialect: Dialect  # how its answer is framed
    timed: bool = False  # whether to note when each of the fake upstream's tokens arrives


def chat_request(
    host: str,
    port: int,
    tokens: int,
    delay_ms: float = 0,
    dialect: Dialect = "ollama",
    headers: Mapping[str, str] | None = None,
    prompt: str = "Say something.",
    tool_deltas: int = 0,
    timed: bool = False,
) -> ChatRequest:
    """A streamed chat request in ``dialect`` asking the fake upstream for ``tokens`` tokens,
    each after ``delay_ms``, or for a tool call whose arguments come in ``tool_deltas``
    pieces. The knobs ride in the model name (see fake_upstream.py), which survives
    Córtex's translation between dialects; the token count is also asked for the ordinary
    way. ``timed`` notes when each token arrives (``Result.arrivals``)."""
    model = f"bench-t{tokens}-d{delay_ms:g}" + (f"-a{tool_deltas}" if tool_deltas else "")
    messages = [{"role": "user", "content": prompt}]
    payload: dict[str, Any]
    if dialect == "ollama":
        path = "/api/chat"
        payload = {"model": model, "messages": messages, "options": {"num_predict": tokens}}
    else:
        path = "/v1/chat/completions"
        payload = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": tokens,
        }
    if tool_deltas:
        payload["tools"] = [TOOL]
    body = orjson.dumps(payload)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: cortex-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        + "\r\n"
    )
    return ChatRequest(head.encode() + body, dialect, timed)


TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}
