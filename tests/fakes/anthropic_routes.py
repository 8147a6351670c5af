"""Anthropic's Messages API under /v1/messages (as Ollama ≥0.14, llama-server and vLLM serve it).

One Script drives it as it drives the other dialects. Faults count the answer's units:
each thinking piece, each content token, and per tool call a block start plus 2-3
argument fragments. A unit carries the block events around it (the previous block's
stop, its own block's start), so a cut between units leaves whole events.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from itertools import islice
from typing import Any

from tests.fakes import anthropic_wire as wire
from tests.fakes import vectors
from tests.fakes.openai_wire import tool_arguments
from tests.fakes.script import DEFAULT_ERROR_BODY, Host, Script
from tests.fakes.transport import Out, Reply, Request, Stream, pump, whole

PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})


def denied(host: Host, req: Request) -> Reply | None:
    """401 unless the request carries the key as `x-api-key` or a bearer token (if one is set)."""
    key = host.api_key
    if key is None or key in (req.headers.get("x-api-key"), _bearer(req)):
        return None
    return 401, wire.JSON, wire.authentication()


def _bearer(req: Request) -> str | None:
    auth = req.headers.get("authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


async def respond(host: Host, out: Out, req: Request, script: Script) -> bool:
    """Everything under /v1/messages: key check, the script's header delay and status fault."""
    if (refusal := denied(host, req)) is not None:
        return await out.whole(*refusal)
    if req.path in script.applies_to:
        if script.header_delay:
            await asyncio.sleep(script.header_delay)
        if script.fault == "status":
            if script.error_body == DEFAULT_ERROR_BODY:
                body = wire.error_body("api_error", "fake upstream failure")
                return await out.whole(script.status, wire.JSON, body)
            return await out.whole(script.status, script.error_content_type, script.error_body)
    if req.method == "POST" and req.path == "/v1/messages":
        return await _messages(host, out, req, script)
    if req.method == "POST" and req.path == "/v1/messages/count_tokens":
        return await _count_tokens(host, out, req)
    return await out.whole(404, wire.JSON, wire.error_body("not_found_error", "Not Found"))


async def _body(host: Host, out: Out, req: Request, required: tuple[str, ...]) -> Any:
    """The request's JSON object with a known model and the required fields, or None once
    an error was answered."""
    try:
        body = json.loads(req.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        await out.whole(400, wire.JSON, wire.invalid_request("body: Input should be an object"))
        return None
    for field in ("model", *required):
        if field not in body:
            await out.whole(400, wire.JSON, wire.invalid_request(f"{field}: Field required"))
            return None
    if not isinstance(body["model"], str) or host.resolve(body["model"]) is None:
        await out.whole(404, wire.JSON, wire.not_found(str(body["model"])))
        return None
    return body


def _texts(value: Any) -> Iterator[str]:
    """Every string inside a JSON value, for the fake tokenizer."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)


async def _count_tokens(host: Host, out: Out, req: Request) -> bool:
    body = await _body(host, out, req, ("messages",))
    if body is None:
        return not out.close
    parts = [body["messages"], body.get("system"), body.get("tools")]
    count = vectors.token_count(" ".join(_texts(parts)))
    return await out.whole(200, wire.JSON, wire.count_tokens_body(count))


async def _messages(host: Host, out: Out, req: Request, script: Script) -> bool:
    body = await _body(host, out, req, ("messages", "max_tokens"))
    if body is None:
        return not out.close
    model = host.resolve(body["model"]) or body["model"]
    await host.use(model)
    try:
        return await _answer(host, out, script, body)
    finally:
        host.done(model)


async def _answer(host: Host, out: Out, script: Script, body: dict[str, Any]) -> bool:
    model: str = body["model"]
    id_ = "msg_" + (script.completion_id or f"fake{host.next_id()}")
    tokens, count = script.token_iter(), script.token_total()
    stop = wire.STOP_REASONS.get(script.done_reason, "end_turn")
    limit = body["max_tokens"]
    if isinstance(limit, int) and limit < count:
        tokens, count, stop = islice(tokens, limit), limit, "max_tokens"
    thinking = script.thinking or ()
    calls = script.tool_calls
    if calls:
        stop = "tool_use"
    call_units = sum(1 + len(wire.fragments(tool_arguments(call))) for call in calls or ())
    total = len(thinking) + (call_units if calls else count)

    if body.get("stream") is not True:

        def answer() -> Reply:
            text = "" if calls else "".join(tokens)
            blocks = wire.content(text, "".join(thinking), calls)
            return 200, wire.JSON, wire.message_body(id_, model, blocks, stop, total)

        error = (500, wire.JSON, wire.error_body("api_error", script.error_message))
        return await whole(out, script, total, answer, error)

    blocks = _Blocks()

    def units() -> Iterator[bytes]:
        for piece in thinking:
            yield blocks.enter("thinking") + wire.thinking_delta(blocks.index, piece)
        for i, call in enumerate(calls or ()):
            yield blocks.enter("tool_use", wire.tool_use_id(i, call["name"]), call["name"])
            for piece in wire.fragments(tool_arguments(call)):
                yield wire.input_json_delta(blocks.index, piece)
        if not calls:
            for token in tokens:
                yield blocks.enter("text") + wire.text_delta(blocks.index, token)

    def tail(written: int) -> list[bytes]:
        return [blocks.close() + wire.message_delta(stop, written), wire.MESSAGE_STOP]

    stream = Stream(
        content_type=wire.SSE,
        units=units(),
        total=total,
        tail=tail,
        error_line=wire.error_event("api_error", script.error_message),
        head=[wire.message_start(id_, model)],
    )
    return await pump(out, script, stream)


class _Blocks:
    """The open content block: entering another kind (or another tool call) closes it.
    Anthropic's ping follows the first block's start."""

    def __init__(self) -> None:
        self.index = -1
        self.kind: str | None = None

    def enter(self, kind: str, *tool: str) -> bytes:
        if kind == self.kind and kind != "tool_use":
            return b""
        out = self.close()
        self.index += 1
        self.kind = kind
        if kind == "thinking":
            out += wire.thinking_start(self.index)
        elif kind == "text":
            out += wire.text_start(self.index)
        else:
            out += wire.tool_use_start(self.index, *tool)
        return out + (wire.PING if self.index == 0 else b"")

    def close(self) -> bytes:
        if self.kind is None:
            return b""
        out = wire.signature_delta(self.index) if self.kind == "thinking" else b""
        self.kind = None
        return out + wire.block_stop(self.index)
