"""Operational endpoints: liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import CortexError
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
    """The upstream model server answers; a load balancer may send traffic."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await gateway(request).fetch("/api/version")
    except TimeoutError:
        return _unready(f"the model server did not answer within {READY_TIMEOUT:g} s")
    except CortexError as exc:
        return _unready(exc.message)
    return json_reply({"status": "ready"})


def _unready(reason: str) -> Response:
    return json_reply({"status": "unavailable", "error": reason}, status=503)
