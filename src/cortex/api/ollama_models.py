"""Ollama's discovery calls, answered for every backend: version, tags, ps and show.

Clients decide from these what a model can do: VS Code's Copilot wants a version of
0.6.4 or later and reads ``/api/show``'s capabilities and context length; Continue
reads its template for fill-in-the-middle; Open WebUI takes its backends' lowest
version.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from .. import __version__
from ..backends.base import upstream_json
from ..catalog import name_digest, tags_body
from ..context import RequestContext, context
from ..errors import BadRequest
from ..gateway import Gateway, gateway
from ..modelname import canonical
from ..routing import Lease, Member
from ..routing.residency import unix_time
from .body import read_json_object, request_schema, validate
from .replies import json_reply, raw_json_reply
from .routed import answered, lone_backends_answer, visible_models

router = APIRouter(tags=["Ollama"])

VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Ollama writes for a time it does not have


class ShowRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    name: str | None = None


@router.get("/api/version")
async def version(request: Request) -> Response:
    """The lowest version among the Ollama backends (what every one of them can do), else
    the ``ollama_version`` setting; Córtex's own in ``X-Cortex-Version``."""
    gw = gateway(request)
    servers = [m for m in gw.router.members if m.backend.manages_models]
    answers = await asyncio.gather(
        *(gw.fetch(m, "/api/version") for m in servers), return_exceptions=True
    )
    told = [v for a in answers if isinstance(a, bytes) and (v := _version(a)) is not None]
    lowest = min(told, key=_order, default=gw.settings.ollama_version)
    response = json_reply({"version": lowest})
    response.headers["X-Cortex-Version"] = __version__
    return response


def _version(answer: bytes) -> str | None:
    """A server's version; None for none, or a build from source (0.0.0), which says
    nothing of what it can do."""
    try:
        told = orjson.loads(answer).get("version")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(told, str) or VERSION.match(told) is None or _order(told) == (0, 0, 0):
        return None
    return told


def _order(version: str) -> tuple[int, ...]:
    found = VERSION.match(version)
    return tuple(int(part) for part in found.groups()) if found else (0, 0, 0)


@router.get("/api/tags")
async def tags(request: Request) -> Response:
    gw, ctx = gateway(request), context(request)
    own = None if gw.aliases else await lone_backends_answer(gw, "ollama", "/api/tags", ctx)
    return own or raw_json_reply(visible_models(tags_body(await gw.models()), ctx))


@router.get("/api/ps")
async def running(request: Request) -> Response:
    """The models loaded on every backend: an Ollama's ``/api/ps``, and each model an
    OpenAI-compatible server tells the context of (it serves it, so it is loaded)."""
    gw, ctx = gateway(request), context(request)
    ollamas = [m for m in gw.router.members if m.backend.wire.speaks("ollama")]
    if len(ollamas) == 1 and gw.single is not None:
        return raw_json_reply(visible_models(await gw.fetch(ollamas[0], "/api/ps"), ctx))
    answers = await asyncio.gather(
        *(gw.fetch(m, "/api/ps") for m in ollamas), return_exceptions=True
    )
    merged: dict[str, dict[str, Any]] = {}
    for answer in answers:
        if not isinstance(answer, bytes):
            continue
        for entry in upstream_json(answer).get("models") or []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or entry.get("remote_host"):
                continue
            kept = merged.setdefault(canonical(name), entry)
            if _expiry(entry) > _expiry(kept):  # the same model on two servers: shown once
                merged[canonical(name)] = entry
    for member in gw.router.members:
        for served in _served(member):
            merged.setdefault(canonical(served["name"]), served)
    loaded = sorted(merged.values(), key=_expiry, reverse=True)  # as Ollama orders them
    return raw_json_reply(visible_models(orjson.dumps({"models": loaded}), ctx))


def _expiry(entry: dict[str, Any]) -> float:
    return unix_time(entry.get("expires_at")) or 0.0


def _served(member: Member) -> list[dict[str, Any]]:
    """An OpenAI-compatible server's models whose context it tells, as ``/api/ps`` entries."""
    if member.backend.wire.speaks("ollama") or member.models is None:
        return []
    return [
        {
            "name": e.name,
            "model": e.name,
            "size": 0,
            "digest": name_digest(e.name),
            "details": orjson.loads(tags_body([e]))["models"][0]["details"],
            "expires_at": GO_ZERO_TIME,
            "size_vram": 0,
            "context_length": e.context_length,
        }
        for e in member.models
        if e.context_length is not None
    ]


@router.post("/api/show", openapi_extra=request_schema(ShowRequest))
async def show(request: Request) -> Response:
    gw, ctx = gateway(request), context(request)
    raw, payload = await read_json_object(request, gw.settings)
    name = validate(ShowRequest, payload).model or payload.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("invalid request: model: Field required")
    if (target := gw.aliases.resolve(name)) is not None:
        ctx.alias, name = name, target
        raw = orjson.dumps({**payload, "model": target, "name": target})
    return raw_json_reply(await _shown(gw, name, raw, ctx))


async def _shown(gw: Gateway, name: str, raw: bytes, ctx: RequestContext) -> bytes:
    async def call(lease: Lease) -> bytes:
        models = lease.member.models
        shown = lease.backend.wire.show(
            name, raw, models if models is not None else await gw.models()
        )
        return shown if isinstance(shown, bytes) else await answered(gw, lease, shown, ctx)

    return await gw.with_backend(name, call, ctx)
