"""OpenAI-compatible API under /v1: chat and text completions, models, embeddings."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any
from urllib.parse import unquote

from tests.fakes import openai_wire as wire
from tests.fakes import vectors
from tests.fakes.script import DEFAULT_ERROR_BODY, Host, Script
from tests.fakes.transport import Out, Reply, Request, Stream, pump, whole

ANSWER_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})


def denied(host: Host, req: Request) -> Reply | None:
    """401 unless the request carries `Authorization: Bearer <host.api_key>` (if one is set)."""
    if host.api_key is None or req.headers.get("authorization") == f"Bearer {host.api_key}":
        return None
    return 401, wire.JSON, wire.invalid_api_key()


def status_fault(script: Script) -> Reply:
    """fault="status" on a /v1 path: an OpenAI-shaped error unless the test chose a body."""
    if script.error_body == DEFAULT_ERROR_BODY:
        return script.status, wire.JSON, wire.server_error("fake upstream failure")
    return script.status, script.error_content_type, script.error_body


async def serve(host: Host, out: Out, req: Request, script: Script) -> bool:
    method, path = req.method, req.path
    if method == "POST" and path in ANSWER_PATHS:
        return await _answer(host, out, req, script)
    if method == "POST" and path == "/v1/embeddings":
        return await _embeddings(host, out, req)
    if method == "GET" and path == "/v1/models":
        return await out.whole(200, wire.JSON, wire.models_body(host.models, host.max_model_len))
    if method == "GET" and path.startswith("/v1/models/"):
        model = unquote(path.removeprefix("/v1/models/"))
        name = host.resolve(model)
        if name is None:
            return await out.whole(404, wire.JSON, wire.model_not_found(model))
        return await out.whole(200, wire.JSON, wire.dumps(wire.model_object(name)))
    return await out.whole(404, wire.JSON, wire.invalid_url(method, path))


async def _body(host: Host, out: Out, req: Request, required: str) -> dict[str, Any] | None:
    """The request's JSON object with a known model and the `required` field, or None once
    an error was answered."""
    try:
        body = json.loads(req.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        await out.whole(400, wire.JSON, wire.bad_json())
        return None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        await out.whole(400, wire.JSON, wire.error_body("you must provide a model parameter"))
        return None
    if host.resolve(model) is None:
        await out.whole(404, wire.JSON, wire.model_not_found(model))
        return None
    if required not in body:
        await out.whole(400, wire.JSON, wire.missing_param(required))
        return None
    return body


def _created(script: Script) -> int:
    if script.created_at:  # RFC 3339 in UTC, as Script.created_at is for Ollama
        return calendar.timegm(time.strptime(script.created_at[:19], "%Y-%m-%dT%H:%M:%S"))
    return int(time.time())


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


async def _answer(host: Host, out: Out, req: Request, script: Script) -> bool:
    chat = req.path == "/v1/chat/completions"
    body = await _body(host, out, req, "messages" if chat else "prompt")
    if body is None:
        return not out.close
    model: str = body["model"]
    await host.use(host.resolve(model) or model)
    try:
        return await _stream(host, out, req, script, body, chat)
    finally:
        host.done(host.resolve(model) or model)


async def _stream(
    host: Host, out: Out, req: Request, script: Script, body: dict[str, Any], chat: bool
) -> bool:
    model: str = body["model"]
    out.set_sndbuf(script.sndbuf)
    id_ = ("chatcmpl-" if chat else "cmpl-") + (script.completion_id or f"fake{host.next_id()}")
    created = _created(script)

    tokens = script.token_iter()
    count = script.token_total()
    finish = script.done_reason
    limit = _max_tokens(body)
    if limit is not None and limit < count:
        tokens, count, finish = islice(tokens, limit), limit, "length"
    thinking = (script.thinking or ()) if chat else ()
    calls = script.tool_calls if chat else None
    if calls:
        finish = "tool_calls"
    call_deltas = wire.tool_call_deltas(calls) if calls else []
    total = len(thinking) + (len(call_deltas) if calls else count)

    if body.get("stream") is not True:

        def answer() -> Reply:
            text = "" if calls else "".join(tokens)
            if not chat:
                return (
                    200,
                    wire.JSON,
                    wire.text_completion(id_, created, model, text, finish, total),
                )
            message = wire.chat_message(text, "".join(thinking), calls)
            return 200, wire.JSON, wire.chat_completion(id_, created, model, message, finish, total)

        error = (500, wire.JSON, wire.server_error(script.error_message))
        return await whole(out, script, total, answer, error)

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    chunks = wire.Chunks(id_, created, model, chat, include_usage)

    def units() -> Iterator[bytes]:
        for piece in thinking:
            yield chunks.delta({"reasoning_content": piece})
        for delta in call_deltas:
            yield chunks.delta(delta)
        if not calls:
            for token in tokens:
                yield chunks.content(token) if chat else chunks.text(token)

    def tail(written: int) -> list[bytes]:
        last = chunks.delta({}, finish) if chat else chunks.text("", finish)
        usage = [chunks.usage_event(wire.PROMPT_TOKENS, written)] if include_usage else []
        return [last, *usage, wire.DONE]

    head = [chunks.delta({"role": "assistant", "content": None if calls else ""})] if chat else []
    stream = Stream(
        content_type=wire.SSE,
        units=units(),
        total=total,
        tail=tail,
        error_line=wire.stream_error_event(script.error_message),
        head=head,
    )
    return await pump(out, script, stream)


def _inputs(raw: Any) -> list[str] | None:
    """OpenAI's `input`: a string, a list of strings, a token list, or a list of token lists
    (token lists are embedded by their JSON text)."""
    if isinstance(raw, str):
        return [raw] if raw else None
    if not isinstance(raw, list) or not raw:
        return None
    if all(isinstance(item, int) for item in raw):
        return [json.dumps(raw)]
    if all(isinstance(item, str) and item for item in raw):
        return list(raw)
    if all(isinstance(item, list) and item for item in raw):
        return [json.dumps(item) for item in raw]
    return None


async def _embeddings(host: Host, out: Out, req: Request) -> bool:
    body = await _body(host, out, req, "input")
    if body is None:
        return not out.close
    texts = _inputs(body["input"])
    if texts is None:
        message = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
        return await out.whole(400, wire.JSON, wire.error_body(message))
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and dims > 0 else vectors.DIMENSIONS
    if dims > vectors.MAX_DIMENSIONS:
        message = f"dimensions must be at most {vectors.MAX_DIMENSIONS}"
        return await out.whole(400, wire.JSON, wire.error_body(message))
    as_base64 = body.get("encoding_format") == "base64"
    await host.use(host.resolve(body["model"]) or body["model"])
    host.done(host.resolve(body["model"]) or body["model"])
    return await out.whole(
        200, wire.JSON, wire.embeddings_body(body["model"], texts, dims, as_base64)
    )
