"""Ollama's model management: pull, push, create, copy, delete and blobs, in its shapes.

Progress lines are ``api.ProgressResponse`` (``status``, and ``digest``, ``total``,
``completed`` while a layer moves), written one a line by gin's ``streamResponse``
as ``application/x-ndjson``; ``stream: false`` gets the last one as
``application/json; charset=utf-8`` (``waitForStream``). A failure after the first
line is an ``{"error": …}`` line. Copy and delete answer 200 with no body.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from tests.fakes import ollama_wire as wire
from tests.fakes.script import Host
from tests.fakes.transport import Out, Request, parse_json

LAYER = 4_000_000
STEPS = 4


def layer_digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(f"layer:{name}".encode()).hexdigest()


def pull_lines(name: str) -> list[dict[str, Any]]:
    """What ``PullModel`` reports, in order (server/images.go, server/download.go)."""
    digest = layer_digest(name)
    lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    for step in range(1, STEPS + 1):
        lines.append(
            {
                "status": f"pulling {digest[7:19]}",
                "digest": digest,
                "total": LAYER,
                "completed": LAYER * step // STEPS,
            }
        )
    lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
    return [*lines, {"status": "success"}]


async def _bad(out: Out, message: str, status: int = 400) -> bool:
    return await out.whole(status, wire.JSON_UTF8, wire.error_body(message))


async def _progress(
    host: Host, out: Out, body: dict[str, Any], lines: list[dict[str, Any]]
) -> bool:
    failure = host.admin_failure
    if body.get("stream") is False:
        if failure is not None:
            return await _bad(out, failure, 500)
        return await out.whole(200, wire.JSON_UTF8, wire.go_json(lines[-1]))
    await out.start_chunked(200, wire.NDJSON)
    for index, line in enumerate(lines):
        if failure is not None and index == 1:
            await out.lines([wire.error_line(failure)])
            return await out.end()
        await out.lines([wire.go_json(line) + b"\n"])
        await asyncio.sleep(host.progress_delay)
    return await out.end()


def _name(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    name = body.get("model") or body.get("name")
    return name if isinstance(name, str) and name else None


async def respond(host: Host, out: Out, req: Request) -> bool | None:
    """Answer a management call; None for a path that is not one."""
    path, method = req.path, req.method
    if path.startswith("/api/blobs/"):
        digest = path.removeprefix("/api/blobs/")
        blobs = host.blobs
        if method == "HEAD":
            return await out.whole(200 if digest in blobs else 404, wire.JSON_UTF8, b"", True)
        if method == "POST":
            if digest in blobs:
                return await out.whole(200, wire.TEXT_PLAIN, b"")
            if "sha256:" + hashlib.sha256(req.body).hexdigest() != digest:
                return await _bad(out, f'digest mismatch, expected "{digest}"')
            blobs.add(digest)
            return await out.whole(201, wire.TEXT_PLAIN, b"")
        return None
    if path not in ("/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"):
        return None
    body, error = parse_json(req.body)
    if error is not None:
        return await _bad(out, error)
    if path == "/api/copy":
        source, target = body.get("source"), body.get("destination")
        if host.resolve(source) is None:
            return await out.whole(
                404, wire.JSON_UTF8, wire.error_body(f'model "{source}" not found')
            )
        host.models.append(target)
        return await out.whole(200, wire.TEXT_PLAIN, b"")
    name = _name(body)
    if name is None:
        return await _bad(out, "model is required")
    if path == "/api/delete":
        found = host.resolve(name)
        if found is None:
            return await out.whole(
                404, wire.JSON_UTF8, wire.error_body(f"model '{name}' not found")
            )
        host.models.remove(found)
        return await out.whole(200, wire.TEXT_PLAIN, b"")
    if path == "/api/push":
        digest = layer_digest(name)
        moved = {"status": f"pushing {digest[7:19]}", "digest": digest, "total": LAYER}
        lines = [{"status": "retrieving manifest"}, moved, {"status": "pushing manifest"}]
        return await _progress(host, out, body, [*lines, {"status": "success"}])
    if path == "/api/create":
        missing = [d for d in (body.get("files") or {}).values() if d not in host.blobs]
        if missing:
            return await _bad(out, f"blob {missing[0]} not found")
        lines = [{"status": "parsing GGUF"}, {"status": "writing manifest"}, {"status": "success"}]
    else:
        lines = pull_lines(name)
    done = await _progress(host, out, body, lines)
    if host.admin_failure is None and host.resolve(name) is None:
        host.models.append(name if ":" in name else f"{name}:latest")
    return done
