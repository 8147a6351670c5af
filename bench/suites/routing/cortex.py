"""Córtex in front of the simulated servers: its config under a rule, and waiting until it
has seen them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from harness.machine import HOST

from suites.routing.plan import Plan


def config(
    rule: str,
    ports: Sequence[int],
    names: Sequence[str],
    plan: Plan,
    dir: Path,
    port: int,
    redis_url: str | None = None,
    apart: bool = False,  # several instances that share no state
) -> str:
    lines = [
        f'host = "{HOST}"',
        f"port = {port}",
        f'routing = "{rule}"',
        f"health_interval = {plan.health_interval}",
        'log_level = "warning"',
        "access_log = false",
        "max_connections = 1000",
        f'keys_file = "{dir / "keys.json"}"',
        *plan.settings,
    ]
    if redis_url is not None:
        lines += [f'redis_url = "{redis_url}"', "require_keys = false"]
    if apart:
        lines.append("balance_homes = false")
    for name, port in zip(names, ports, strict=True):
        lines += ["", "[[backends]]", f'name = "{name}"']
        lines += [f'url = "http://{HOST}:{port}"', 'kind = "ollama"']
    return "\n".join(lines) + "\n"


async def settle(session: aiohttp.ClientSession, port: int, models: set[str], wait: float) -> None:
    """Wait until Córtex lists every model, then for its next health check (``/api/ps``)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        async with session.get(f"http://{HOST}:{port}/api/tags") as resp:
            if resp.status == 200:
                listed = {m["name"] for m in (await resp.json())["models"]}
                if models <= listed:
                    break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError(f"Córtex on port {port} never listed {sorted(models)}")
    await asyncio.sleep(wait)


async def backends_status(session: aiohttp.ClientSession, port: int) -> Any:
    try:
        async with session.get(f"http://{HOST}:{port}/cortex/backends") as resp:
            return await resp.json() if resp.status == 200 else {"status": resp.status}
    except (aiohttp.ClientError, ValueError) as exc:
        return {"error": repr(exc)}
