"""What a test scripts: how generation behaves (`Script`), and the fake state handlers see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tests.fakes import ollama_wire as wire

Fault = Literal[
    "none",
    "split_lines",
    "split_utf8",
    "stall_before_first",
    "stall_mid",
    "reset_mid",
    "close_mid",
    "status",
    "garbage_line",
    "no_trailing_newline",
]
MID_FAULTS = frozenset({"stall_mid", "reset_mid", "close_mid", "garbage_line"})
DEFAULT_ERROR_BODY = b'{"error":"fake upstream failure"}'
GENERATION_PATHS = frozenset(
    {"/api/chat", "/api/generate", "/v1/chat/completions", "/v1/completions", "/v1/messages"}
)


@dataclass(frozen=True)
class Script:
    """How generation requests behave. Read once per request, when it arrives.

    Faults count "tokens" as the streamed pieces of the answer: thinking pieces, content
    tokens, and tool-call chunks (one line in Ollama's dialect, a header plus 2-3 argument
    fragments per call in OpenAI's).
    """

    tokens: Sequence[str] = ("Había", " una", " vez")
    count: int | None = None  # if set, stream "tok0 ", "tok1 ", ... instead of `tokens`
    delay: float = 0.0  # sleep before each token; 0 batches writes (chunk framing unchanged)
    header_delay: float = 0.0  # sleep before the status line
    fault: Fault = "none"
    fault_after: int = 1  # tokens written before a *_mid / garbage_line fault fires
    stall: float = 3600.0  # length of stall_before_first / stall_mid (then it carries on)
    split_at: tuple[int, ...] | None = None  # byte offsets for split_lines (default 1, n/2, n-1)
    split_pause: float = 0.005
    status: int = 500  # fault="status"
    # fault="status" body; left at the default, /v1/* paths get an OpenAI-shaped error instead
    error_body: bytes = DEFAULT_ERROR_BODY
    error_content_type: str = wire.JSON_UTF8
    garbage: bytes = b"<html>oops\n"
    # a mid-stream error after this many tokens, then the end: Ollama's {"error":...} line,
    # or OpenAI's `data: {"error":{...}}` event (no finish_reason chunk, no [DONE])
    error_line_after: int | None = None
    error_message: str = "an error was encountered while running the model: unexpected EOF"
    done_reason: str = "stop"  # Ollama's done_reason / OpenAI's finish_reason
    created_at: str | None = None  # fixed created_at (default: the current time per line)
    sndbuf: int | None = None  # SO_SNDBUF for the response socket, to tighten backpressure
    # paths where header_delay and fault="status" apply (generation endpoints by default)
    applies_to: frozenset[str] = GENERATION_PATHS
    # answer with tool calls instead of content: each {"name": str, "arguments": dict}
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    # reasoning streamed before the answer: Ollama's message.thinking, OpenAI's
    # delta.reasoning_content (the llama-server / vLLM convention)
    thinking: tuple[str, ...] | None = None
    # False: a model that cannot think, which Ollama's /api/chat refuses a think for (a 400)
    thinks: bool | None = None
    # fixed OpenAI id suffix: "chatcmpl-<id>" / "cmpl-<id>" (default: from a request counter)
    completion_id: str | None = None

    def token_iter(self) -> Iterable[str]:
        if self.count is None:
            return self.tokens
        return (f"tok{i} " for i in range(self.count))

    def token_total(self) -> int:
        return len(self.tokens) if self.count is None else self.count


class Host(Protocol):
    """The fake's state as request handlers see it."""

    models: list[str]
    api_key: str | None
    blobs: set[str]  # digests uploaded to /api/blobs
    admin_failure: str | None  # if set, pull/push/create fail with it after their first line
    progress_delay: float  # seconds between progress lines
    props: bytes | None  # if set, GET /props answers it (llama-server-like)
    max_model_len: int | None  # if set, /v1/models entries carry it (vLLM-like)
    version: str  # what /api/version answers

    def resolve(self, model: str) -> str | None:
        """The listed name a request's model refers to ("x" finds "x:latest"), or None."""

    async def use(self, model: str) -> None:
        """Have `model` in memory (loading it, maybe evicting another); then call `done`."""

    def done(self, model: str, keep_alive: Any = None) -> None:
        """An answer on `model` ended; keep_alive 0 unloads it."""

    def running(self) -> list[str]:
        """Loaded models, most recently used first."""

    def next_id(self) -> int:
        """A fresh number for OpenAI response ids."""
