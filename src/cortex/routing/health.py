"""Health and catalogue: one fetch of a backend's model list is also its health check."""

from __future__ import annotations

import asyncio
import logging
import time

from ..backends.local import LocalBackend
from ..catalog import from_openai, from_tags
from ..errors import CortexError
from ..stream.relay import RelayLimits, read_whole
from .member import Member

logger = logging.getLogger("cortex.router")

CHECK_TIMEOUT = 5.0


async def check(member: Member, limits: RelayLimits) -> str | None:
    """Refresh the member's models and circuit; its problem, or None when it answered."""
    if isinstance(member.backend, LocalBackend):
        member.models = from_tags(await fetch(member, "/api/tags", limits))
        return member.backend.problem
    openai = member.config.kind == "openai"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            raw = await fetch(member, "/models" if openai else "/api/tags", limits)
        member.models = from_openai(raw) if openai else from_tags(raw)
        member.raw_tags = None if openai else raw
    except (CortexError, TimeoutError) as exc:
        reason = exc.message if isinstance(exc, CortexError) else "no answer in time"
        if member.circuit.state != "open":
            logger.warning("backend %s failed its check: %s", member.name, reason)
        member.circuit.failure(time.monotonic())
        return reason
    if member.circuit.state != "closed":
        logger.info("backend %s is back", member.name)
    member.circuit.success()
    return None


async def fetch(member: Member, path: str, limits: RelayLimits) -> bytes:
    async with member.backend.open("GET", path) as body:
        return await read_whole(body, limits)
