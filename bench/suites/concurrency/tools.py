"""Streamed tool calls: one call whose arguments come in many small pieces (OpenAI
deltas), forwarded (OpenAI client) or reassembled into Ollama's one whole call (Ollama
client, translated); time to the answer's end and Córtex's CPU per piece."""

from __future__ import annotations

import asyncio

import orjson
from fake_upstream import tool_pieces
from harness.loadgen import chat_request
from harness.loads import warmed_load
from harness.machine import HOST

from suites.concurrency.plan import Plan
from suites.concurrency.targets import Target


async def tool_calls(targets: list[Target], plan: Plan) -> dict[str, dict[str, object]]:
    """Per target: the answers' total times and Córtex's CPU per 1000 argument pieces."""
    out: dict[str, dict[str, object]] = {}
    for target in targets:
        request = chat_request(HOST, target.port, 1, 0, target.client, tool_deltas=plan.tool_deltas)
        pids = {f"cortex {p}": p for p in target.pids}
        load = await warmed_load(
            target.port,
            request,
            plan.tool_concurrency,
            plan.tool_requests,
            plan.tool_concurrency,
            pids,
            target.name,
        )
        cpu = sum(u["cpu_s"] for u in load.of("cortex"))
        pieces = plan.tool_deltas * len(load.results)
        out[target.name] = {
            "total": [r.total for r in load.results],
            "cpu_ms_per_1000_pieces": cpu / pieces * 1e6,
            "whole": await reassembled(target, plan) if target.client == "ollama" else None,
        }
    return out


async def reassembled(target: Target, plan: Plan) -> bool:
    """Whether an Ollama client gets the call's arguments whole: the object the pieces make."""
    request = chat_request(
        HOST,
        target.port,
        1,
        0,
        "ollama",
        headers={"Connection": "close"},
        tool_deltas=plan.tool_deltas,
    )
    reader, writer = await asyncio.open_connection(HOST, target.port)
    writer.write(request.raw)
    body = await asyncio.wait_for(reader.read(-1), 30)
    writer.close()
    arguments = orjson.dumps(orjson.loads("".join(tool_pieces(plan.tool_deltas))))
    return b'"arguments":' + arguments in body
