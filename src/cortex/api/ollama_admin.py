"""Ollama's model management, relayed to the Ollama backends it concerns.

``/api/pull``, ``/api/create`` and blob uploads go where ``pull_to`` says
(``routing/placement.py``); ``/api/copy`` and ``/api/delete`` go to every server that
holds the model, so what Córtex lists stays whole; ``/api/push`` to one of them.
With API keys on, only an admin key may call these (403 otherwise). The catalogue
and residency are read again after every change.
"""

from __future__ import annotations

import re
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from ..backends.http import HTTPBackend
from ..backends.upload import Upload, stream_to
from ..context import RequestContext, context
from ..errors import BadRequest, CortexError, ModelNotFound
from ..gateway import Gateway, gateway
from ..routing import Member
from ..routing.placement import destinations, holders
from ..stream.pull import read_whole
from .body import body_pieces, declared_length, read_json_object, request_schema, validate
from .progress import ProgressSource, progress_response
from .replies import json_reply

router = APIRouter(tags=["Ollama"])
DIGEST = re.compile("sha256[:-][0-9a-fA-F]{64}")  # what Ollama accepts


class PullBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    name: str | None = None
    insecure: bool | None = None
    stream: bool | None = None


class CreateBody(PullBody):
    files: dict[str, str] | None = None


class CopyBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    source: str
    destination: str


class DeleteBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str | None = None
    name: str | None = None


@router.post("/api/pull", openapi_extra=request_schema(PullBody))
async def pull(request: Request) -> Response:
    return await _placed(request, PullBody, "/api/pull")


@router.post("/api/create", openapi_extra=request_schema(CreateBody))
async def create(request: Request) -> Response:
    return await _placed(request, CreateBody, "/api/create")


async def _placed(request: Request, schema: type[BaseModel], path: str) -> Response:
    """A call that puts a model somewhere: relayed where ``pull_to`` places it."""
    gw, ctx, raw, payload, name = await _admin_call(request, schema)
    await gw.router.refresh()
    targets = destinations(gw.router.members, name, gw.settings.pull_to)
    return _progress(gw, ctx, targets, path, raw, payload)


@router.post("/api/push", openapi_extra=request_schema(PullBody))
async def push(request: Request) -> Response:
    gw, ctx, raw, payload, name = await _admin_call(request, PullBody)
    return _progress(gw, ctx, (await _held(gw, name))[:1], "/api/push", raw, payload)


@router.post("/api/copy", openapi_extra=request_schema(CopyBody))
async def copy(request: Request) -> Response:
    gw, ctx = gateway(request), context(request)
    _allow(ctx)
    raw, payload = await read_json_object(request, gw.settings)
    source = validate(CopyBody, payload).source
    for member in await _held(gw, source):
        await _send(gw, member, "POST", "/api/copy", raw, ctx)
    await gw.router.refresh()
    return Response(status_code=200)


@router.delete("/api/delete", openapi_extra=request_schema(DeleteBody))
async def delete(request: Request) -> Response:
    gw, ctx, raw, _, name = await _admin_call(request, DeleteBody)
    for member in await _held(gw, name):
        await _send(gw, member, "DELETE", "/api/delete", raw, ctx)
    await gw.router.refresh()
    return Response(status_code=200)


@router.get("/api/blobs/{digest}")
async def has_blob(request: Request, digest: str) -> Response:
    """``HEAD /api/blobs/:digest`` (every GET route answers HEAD): 200 when every server a
    create may go to has the blob."""
    gw, ctx = gateway(request), context(request)
    _allow(ctx)
    _check_digest(digest)
    for member in destinations(gw.router.members, None, gw.settings.pull_to):
        status = await _send(gw, member, "HEAD", f"/api/blobs/{digest}", None, ctx, missing=True)
        if status == 404:
            return json_reply({"error": f"blob {digest} not found"}, status=404)
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def create_blob(request: Request, digest: str) -> Response:
    """A blob, streamed as it arrives to every server a create may go to, at the pace of
    the slowest (at most ``max_blob_bytes``): 201 when one of them stored it, 200 when
    all had it already."""
    gw, ctx = gateway(request), context(request)
    _allow(ctx)
    _check_digest(digest)
    settings = gw.settings
    length = declared_length(request, settings.max_blob_bytes)  # before any server is asked
    uploads = []
    for member in destinations(gw.router.members, None, settings.pull_to):
        assert isinstance(member.backend, HTTPBackend)  # only Ollama servers manage models
        ctx.record.backend = member.name
        uploads.append(Upload(member.backend, f"/api/blobs/{digest}", length, ctx.record.id))
    try:
        for upload in uploads:
            await upload.start()
        pieces = body_pieces(request, settings.max_blob_bytes, settings.body_timeout)
        async with aclosing(pieces):
            await stream_to(uploads, pieces)
        created = False
        for upload in uploads:
            created |= await upload.finish() == 201
    finally:
        for upload in uploads:
            upload.close()
    return Response(status_code=201 if created else 200)


def _check_digest(digest: str) -> None:
    if DIGEST.fullmatch(digest) is None:
        raise BadRequest("invalid digest format")  # Ollama's words; never a path of our own


def _allow(ctx: RequestContext) -> None:
    if ctx.ticket is not None and not ctx.admin:
        raise CortexError("managing models needs an admin key", status=403)


async def _admin_call(
    request: Request, schema: type[BaseModel]
) -> tuple[Gateway, RequestContext, bytes, dict[str, Any], str]:
    gw, ctx = gateway(request), context(request)
    _allow(ctx)
    raw, payload = await read_json_object(request, gw.settings)
    validate(schema, payload)
    name = payload.get("model") or payload.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("model is required")
    ctx.record.model = name
    return gw, ctx, raw, payload, name


async def _held(gw: Gateway, name: str) -> list[Member]:
    await gw.router.refresh()  # who holds what now, not at the last check
    found = holders(gw.router.members, name)
    if not found:
        raise ModelNotFound(f"model '{name}' not found")
    return found


def _progress(
    gw: Gateway,
    ctx: RequestContext,
    targets: list[Member],
    path: str,
    raw: bytes,
    payload: dict[str, Any],
) -> Response:
    stream = payload.get("stream") is not False
    body = raw if stream else orjson.dumps({**payload, "stream": True})
    source = ProgressSource(gw, targets, path, body, stream, ctx, gw.router.refresh)
    return progress_response(source)


async def _send(
    gw: Gateway,
    member: Member,
    method: str,
    path: str,
    body: bytes | None,
    ctx: RequestContext,
    *,
    missing: bool = False,
) -> int:
    """Make one small call; its status (a 404 too, if ``missing`` is expected)."""
    ctx.record.backend = member.name
    try:
        async with member.backend.open(method, path, body, request_id=ctx.record.id) as answer:
            status: int = getattr(answer, "status", 200)
            if method != "HEAD":
                await read_whole(answer, gw.limits)
            return status
    except CortexError as exc:
        if missing and exc.status == 404:
            return 404
        raise
