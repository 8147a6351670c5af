"""Reading and validating request bodies at the edge, bounded in size."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncGenerator
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from ..conduit import conduit_of
from ..config import Settings
from ..context import context
from ..errors import BadRequest, BodyTooLarge
from ..gateway import Gateway, gateway
from ..json_depth import MAX_JSON_DEPTH, too_deep
from .fields import check_keys

Model = TypeVar("Model", bound=BaseModel)
GONE = "the client closed the connection before sending its whole body"


async def read_body(request: Request, settings: Settings) -> bytes:
    """The request's body, bounded in size (413) and in time (408)."""
    limit, timeout = settings.max_body_bytes, settings.body_timeout
    conduit = conduit_of(request.scope)
    if conduit is not None and conduit.body_arrived:  # most bodies come with their head
        return _whole(await request.receive(), limit)  # as long as it said it would be
    declared_length(request, limit)
    parts: list[bytes] = []
    size = 0
    began = time.monotonic()
    try:
        async with asyncio.timeout(timeout):  # a trickled body must not hold a connection
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                parts.append(chunk)
    except ClientDisconnect:
        raise BadRequest(GONE) from None
    except TimeoutError:
        raise BadRequest(
            f"the request body took more than {timeout:g} s to arrive", status=408
        ) from None
    # the client's time, not Córtex's (x-cortex-overhead-ms)
    context(request).record.body_wait = time.monotonic() - began
    return b"".join(parts)


async def body_pieces(request: Request, limit: int, idle: float) -> AsyncGenerator[bytes, None]:
    """The request's body piece by piece as it arrives, for a body too large to hold
    (a blob): bounded in size (413) and in the time between two pieces (408). A length
    declared over the bound is for the caller to refuse first (``declared_length``)."""
    pieces = request.stream()
    size = 0
    while True:
        try:
            async with asyncio.timeout(idle):
                piece = await anext(pieces)
        except StopAsyncIteration:
            return
        except ClientDisconnect:
            raise BadRequest(GONE) from None
        except TimeoutError:
            raise BadRequest(f"the request body stopped for {idle:g} s", status=408) from None
        size += len(piece)
        if size > limit:
            raise too_large(limit)
        yield piece


def declared_length(request: Request, limit: int) -> int | None:
    """The body's length as its head declares it, if it does; 413 when it is over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return None
    if int(declared) > limit:
        raise too_large(limit)
    return int(declared)


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is larger than the {limit}-byte limit")


def _whole(message: Message, limit: int) -> bytes:
    """The body of the one message a body that already arrived makes, without a clock."""
    if message["type"] != "http.request":
        raise BadRequest(GONE)
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise too_large(limit)
    return body


async def read_json_object(request: Request, settings: Settings) -> tuple[bytes, dict[str, Any]]:
    """The raw body and its parsed JSON object; 400, 408 or 413 with a clear message otherwise."""
    raw = await read_body(request, settings)
    if not raw.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        replaced = _lone_surrogates_replaced(raw) if b"\\u" in raw else None
        if replaced is None:
            raise BadRequest(f"request body is not valid JSON: {_where(raw, exc)}") from None
        raw, parsed = replaced
    if not isinstance(parsed, dict):
        raise BadRequest("request body must be a JSON object")
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and too_deep(parsed):
        raise BadRequest(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
    check_keys(raw, parsed)
    return raw, parsed


def _lone_surrogates_replaced(raw: bytes) -> tuple[bytes, Any] | None:
    """The body read as Ollama's Go decoder reads it, where orjson refuses an escaped lone
    surrogate (``"\\ud800"``, valid JSON, no character): it becomes U+FFFD. The body is
    written again for the upstream. Numbers are read as orjson reads them, and None
    means refused for anything else orjson refuses: not JSON, ``NaN``, beyond a double."""
    try:
        read = json.loads(raw, parse_constant=_not_json, parse_float=_finite, parse_int=_integer)
        parsed = _replaced(read)
        return orjson.dumps(parsed), parsed
    except (ValueError, TypeError, RecursionError):  # orjson's errors are of these kinds
        return None


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _integer(text: str) -> int | float:
    """An integer as orjson reads one: beyond 64 bits, a double."""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else _finite(text)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a double")
    return value


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    return value


def _where(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """What is wrong and at which byte; orjson says byte 0 of any bad UTF-8, so that is
    looked for again."""
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return f"it is not UTF-8 ({bad.reason}) at byte {bad.start}"
    return f"{exc.msg} at byte {exc.pos}"


async def read_request(
    request: Request, schema: type[BaseModel]
) -> tuple[Gateway, bytes | None, dict[str, Any]]:
    """The gateway, the raw body (None once changed) and the validated payload, its model
    set: the default model when the client named none, the model an alias stands for."""
    gw = gateway(request)
    raw, payload = await read_json_object(request, gw.settings)
    validate(schema, payload)
    asked = payload.get("model")
    if not asked:
        payload["model"] = await gw.default_model.get()
        return gw, None, payload
    target = gw.aliases.resolve(asked) if isinstance(asked, str) else None
    if target is not None:
        context(request).alias = asked
        payload["model"] = target
        return gw, None, payload
    return gw, raw, payload


def validate(model: type[Model], payload: dict[str, Any]) -> Model:
    """Validate against a request model; the message names each offending field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:3]
        ]
        raise BadRequest("invalid request: " + "; ".join(problems)) from None


def request_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its own body (``read_json_object``)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }
