"""Health and catalogue: one fetch of a backend's model list is also its health check."""

from __future__ import annotations

import asyncio
import logging
import time

from ..backends.props import PROPS_PATH, read_props, with_props
from ..catalog import ModelEntry
from ..errors import CortexError
from ..modelname import canonical
from ..stream.core import RelayLimits
from ..stream.pull import read_whole
from .engine import from_metrics, from_slots
from .member import Member
from .residency import parse_ps

logger = logging.getLogger("cortex.router")

CHECK_TIMEOUT = 5.0


async def check(member: Member, limits: RelayLimits) -> str | None:
    """Refresh the member's models, state and circuit; its problem, or None when it answered."""
    wire = member.backend.wire
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            models = wire.models(await fetch(member, wire.catalogue_path, limits))
        if wire.load_signal == "engine":
            models = with_props(models, await props(member, limits))
        member.models = models
        member.residency.remote = {canonical(e.name) for e in models if e.remote}
        await state(member, limits)
    except (CortexError, TimeoutError) as exc:
        reason = exc.message if isinstance(exc, CortexError) else "no answer in time"
        if member.circuit.state != "open":
            logger.warning("backend %s failed its check: %s", member.name, reason)
        member.circuit.failure(time.monotonic())
        return reason
    if member.circuit.state != "closed":
        logger.info("backend %s is back", member.name)
    member.circuit.success()
    return member.backend.problem


async def fetch(member: Member, path: str, limits: RelayLimits) -> bytes:
    async with member.backend.open("GET", path) as body:
        return await read_whole(body, limits)


async def props(member: Member, limits: RelayLimits) -> ModelEntry | None:
    """What llama-server tells of its model at ``/props``; None from a server without it."""
    try:
        async with (
            asyncio.timeout(CHECK_TIMEOUT),
            member.backend.open("GET", PROPS_PATH, from_root=True) as body,
        ):
            return read_props(await read_whole(body, limits))
    except (CortexError, TimeoutError):
        return None


async def residency(member: Member, limits: RelayLimits) -> None:
    """Read an Ollama backend's ``/api/ps``: which models it has in memory now."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            member.residency.update(parse_ps(await fetch(member, "/api/ps", limits)))
    except (CortexError, TimeoutError, ValueError) as exc:
        # A server without /api/ps (or a bad answer) leaves residency unknown, not empty.
        member.residency.loaded = None
        logger.debug("backend %s: no model residency: %s", member.name, exc)


async def engine_load(member: Member, limits: RelayLimits) -> None:
    """Read an OpenAI-compatible server's own load: ``/metrics``, else llama.cpp's ``/slots``."""
    backend = member.backend
    for path, parse in (("/metrics", from_metrics), ("/slots", from_slots)):
        try:
            async with (
                asyncio.timeout(CHECK_TIMEOUT),
                backend.open("GET", path, from_root=True) as body,
            ):
                found = parse(await read_whole(body, limits))
        except (CortexError, TimeoutError):
            continue
        if found is not None:
            member.engine = found
            return
    member.engine = None


async def state(member: Member, limits: RelayLimits) -> None:
    """What the backend is doing now: its models in memory (Ollama) or its load (OpenAI)."""
    if member.backend.wire.load_signal == "engine":
        await engine_load(member, limits)
    else:
        await residency(member, limits)
