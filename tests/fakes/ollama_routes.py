"""Ollama's native API: chat, generate, embed, embeddings (legacy), show and ps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from tests.fakes import ollama_wire as wire
from tests.fakes import vectors
from tests.fakes.script import Host, Script
from tests.fakes.transport import Out, Reply, Request, Stream, parse_json, pump, whole


def is_zero_duration(value: Any) -> bool:
    """keep_alive 0 (a number of seconds, or a Go duration string like "0", "0s", "0m")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    return isinstance(value, str) and value.rstrip("hms") in ("0", "0.0")


async def _bad(out: Out, message: str, status: int = 400) -> bool:
    return await out.whole(status, wire.JSON_UTF8, wire.error_body(message))


def _is_load(body: dict[str, Any], chat: bool) -> bool:
    """Ollama answers a chat without messages (missing, ``null`` as Go's client sends it, or
    empty) or a generate without prompt by just loading the model."""
    if chat:
        return not body.get("messages")
    return not body.get("prompt") and "messages" not in body


def _limit(body: dict[str, Any]) -> int | None:
    options = body.get("options")
    limit = options.get("num_predict") if isinstance(options, dict) else None
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None


async def generate(host: Host, out: Out, req: Request, script: Script) -> bool:
    """POST /api/chat and /api/generate."""
    body, error = parse_json(req.body)
    if error is not None:
        return await _bad(out, error)
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str):
        return await _bad(out, "invalid model")
    assert isinstance(body, dict)
    name = host.resolve(model) if model else None
    if model and name is None:
        return await out.whole(404, wire.JSON_UTF8, wire.model_not_found(model))
    if script.thinks is False and body.get("think") not in (None, False):
        refusal = json.dumps({"error": f'"{model}" does not support thinking'}).encode()
        return await out.whole(400, wire.JSON_UTF8, refusal)
    model = model or (host.models[0] if host.models else wire.DEFAULT_MODEL)
    keep_alive = body.get("keep_alive")
    await host.use(name or model)
    try:
        return await _answer(host, out, req, script, body, model)
    finally:
        host.done(name or model, keep_alive)


async def _answer(
    host: Host, out: Out, req: Request, script: Script, body: dict[str, Any], model: str
) -> bool:
    keep_alive = body.get("keep_alive")
    out.set_sndbuf(script.sndbuf)
    chat = req.path == "/api/chat"
    if _is_load(body, chat):
        reason = "unload" if is_zero_duration(keep_alive) else "load"
        created = script.created_at or wire.go_time()
        return await out.whole(200, wire.JSON_UTF8, wire.load_body(model, created, chat, reason))

    tokens = script.token_iter()
    count = script.token_total()
    done_reason = script.done_reason
    limit = _limit(body)
    if limit is not None and limit < count:
        tokens, count, done_reason = islice(tokens, limit), limit, "length"
    thinking = script.thinking or ()
    calls = script.tool_calls if chat else None
    total = len(thinking) + (len(calls) if calls else count)

    if body.get("stream") is False:

        def answer() -> Reply:
            created = script.created_at or wire.go_time()
            content = "" if calls else "".join(tokens)
            if chat:
                message = wire.chat_message(content, "".join(thinking), calls)
                final = wire.chat_final(model, created, total, "", done_reason, message)
            else:
                final = wire.generate_final(
                    model, created, total, content, done_reason, "".join(thinking)
                )
            return 200, wire.JSON_UTF8, wire.go_json(final)

        failure = (500, wire.JSON_UTF8, wire.error_body(script.error_message))
        return await whole(out, script, total, answer, failure)

    make_line = wire.stream_line_maker(model, chat)

    def stamp() -> str:
        return script.created_at or wire.go_time()

    def units() -> Iterator[bytes]:
        for piece in thinking:
            if chat:
                message = wire.chat_message(thinking=piece)
                yield wire.chat_message_line(model, stamp(), message) + b"\n"
            else:
                yield wire.generate_thinking_line(model, stamp(), piece) + b"\n"
        if calls:  # one call a line, as Ollama streams them, each with its index
            for index, call in enumerate(calls):
                message = {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [wire.tool_call(call, index)],
                }
                yield wire.chat_message_line(model, stamp(), message) + b"\n"
        else:
            for token in tokens:
                yield make_line(stamp(), token)

    def tail(written: int) -> list[bytes]:
        final = wire.chat_final if chat else wire.generate_final
        return [wire.go_json(final(model, stamp(), written, "", done_reason)) + b"\n"]

    return await pump(
        out,
        script,
        Stream(
            content_type=wire.NDJSON,
            units=units(),
            total=total,
            tail=tail,
            error_line=wire.error_line(script.error_message),
            early_error=(500, "application/json", wire.error_body(script.error_message)),
        ),
    )


async def _model_body(host: Host, out: Out, req: Request) -> tuple[dict[str, Any], str] | None:
    """The request body and its (known) model, or None once an error was answered."""
    body, error = parse_json(req.body)
    if error is not None:
        await _bad(out, error)
        return None
    if not isinstance(body, dict):
        await _bad(out, "json: cannot unmarshal non-object into Go value")
        return None
    model = body.get("model") or body.get("name")  # `name` is the deprecated spelling
    if not isinstance(model, str) or not model:
        await _bad(out, "model is required")
        return None
    name = host.resolve(model)
    if name is None:
        not_found = wire.show_not_found if req.path == "/api/show" else wire.model_not_found
        await out.whole(404, wire.JSON_UTF8, not_found(model))
        return None
    return body, name


async def embed(host: Host, out: Out, req: Request) -> bool:
    """POST /api/embed: {model, input: str | [str], truncate?, dimensions?}."""
    found = await _model_body(host, out, req)
    if found is None:
        return not out.close
    body, name = found
    model = body.get("model") or name
    raw = body.get("input")
    texts = ([raw] if raw else []) if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return await _bad(out, "invalid input type")
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and dims > 0 else vectors.DIMENSIONS
    if dims > vectors.MAX_DIMENSIONS:
        return await _bad(out, f"dimensions must be at most {vectors.MAX_DIMENSIONS}")
    await host.use(name)
    host.done(name, body.get("keep_alive"))
    embeddings = [vectors.embedding(text, dims) for text in texts]
    tokens = sum(vectors.token_count(text) for text in texts)
    return await out.whole(200, wire.JSON_UTF8, wire.embed_body(model, embeddings, tokens))


async def embeddings(host: Host, out: Out, req: Request) -> bool:
    """POST /api/embeddings (legacy): {model, prompt} -> {embedding}."""
    found = await _model_body(host, out, req)
    if found is None:
        return not out.close
    body, name = found
    prompt = body.get("prompt")
    await host.use(name)
    host.done(name, body.get("keep_alive"))
    vector = vectors.embedding(prompt) if isinstance(prompt, str) and prompt else []
    return await out.whole(200, wire.JSON_UTF8, wire.embeddings_body(vector))


async def show(host: Host, out: Out, req: Request) -> bool:
    """POST /api/show: {model} (or the legacy {name})."""
    found = await _model_body(host, out, req)
    if found is None:
        return not out.close
    return await out.whole(200, wire.JSON_UTF8, wire.show_body(found[1]))


async def ps(host: Host, out: Out) -> bool:
    """GET /api/ps: the models used since start (or `reset()`), most recent first."""
    expires = datetime.fromtimestamp(time.time() + wire.KEEP_ALIVE_SECONDS, UTC)
    body = wire.ps_body(host.running(), wire.go_time(expires))
    return await out.whole(200, wire.JSON_UTF8, body)


async def tokenize(out: Out, req: Request) -> bool:
    """llama-server's ``POST /tokenize``: ``{"content": text}`` → ``{"tokens": [...]}``, one
    token a whitespace-separated word, so a test can tell its count from an estimate."""
    text = json.loads(req.body).get("content") or ""
    tokens = list(range(len(text.split())))
    return await out.whole(200, wire.JSON_UTF8, json.dumps({"tokens": tokens}).encode())
