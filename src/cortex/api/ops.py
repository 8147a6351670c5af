"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from ..context import context
from ..gateway import gateway
from .replies import json_reply

router = APIRouter()

READY_TIMEOUT = 3.0


@router.get("/health")
async def health() -> Response:
    """The process is alive and serving."""
    return json_reply({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> Response:
    """At least one backend answers and keys can be checked; a load balancer may send
    traffic."""
    if gateway(request).draining:
        return _unready("Córtex is shutting down")
    if (keys := gateway(request).access.problem) is not None:  # every keyed request: 503
        return _unready(keys)
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            problems = await gateway(request).router.refresh()
    except TimeoutError:
        return _unready(f"no model server answered within {READY_TIMEOUT:g} s")
    if any(problem is None for problem in problems.values()):
        return json_reply({"status": "ready"})
    return _unready("; ".join(p for p in problems.values() if p))


@router.get("/cortex/backends")
async def backends(request: Request) -> Response:
    """Each backend: health, circuit, load, models, latency; and the shared queue. A key
    limited to some models sees only those."""
    router_ = gateway(request).router
    ctx = context(request)
    statuses = [_visible(m.status(ctx.admin), ctx.visible()) for m in router_.members]
    return json_reply({"queued": router_.queued, "backends": statuses})


def _visible(status: dict[str, Any], allowed: Callable[[str], bool] | None) -> dict[str, Any]:
    if allowed is None:
        return status
    if status["models"] is not None:
        status["models"] = [name for name in status["models"] if allowed(name)]
    if status["loaded_models"] is not None:
        status["loaded_models"] = [m for m in status["loaded_models"] if allowed(m["name"])]
    status["failing_models"] = {k: v for k, v in status["failing_models"].items() if allowed(k)}
    return status


@router.get("/cortex/usage")
async def usage(request: Request) -> Response:
    """Per API key and model: requests, prompt and completion tokens, errors; tokens today."""
    return json_reply(await gateway(request).access.usage(context(request).ticket))


def _unready(reason: str) -> Response:
    return json_reply({"status": "unavailable", "error": reason}, status=503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format); 404 when `metrics = false`."""
    metrics = gateway(request).metrics
    if metrics is None:
        raise HTTPException(404, "metrics are turned off (the metrics setting)")
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
