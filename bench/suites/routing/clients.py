"""The clients: conversations streamed through Córtex, each turn timed and recorded."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from harness.machine import HOST

from suites.routing.workloads import Chat, Workload


@dataclass
class Record:
    chat: int
    turn: int
    instance: int
    backend: str
    ttft_s: float | None
    total_s: float
    ok: bool
    error: str = ""
    server_ttft_s: float | None = None  # the server's own: its total minus eval duration

    @property
    def added_s(self) -> float | None:
        """What the way to the server and back added to TTFT: Córtex, sockets, event loops."""
        if self.ttft_s is None or self.server_ttft_s is None:
            return None
        return self.ttft_s - self.server_ttft_s


async def ask(
    session: aiohttp.ClientSession, port: int, model: str, messages: list[dict[str, str]]
) -> tuple[Record, str]:
    """One streamed /api/chat; the record (chat and turn unset) and the answer's text."""
    body = orjson.dumps({"model": model, "messages": messages, "stream": True})
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    url = f"http://{HOST}:{port}/api/chat"
    try:
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            backend = r.headers.get("X-Cortex-Backend", "")
            if r.status != 200:
                error = f"HTTP {r.status}: {(await r.text())[:200]}"
                return failure(started, error, backend), ""
            done, error, server_ttft = False, "", None
            async for line in r.content:
                message = orjson.loads(line)
                content = (message.get("message") or {}).get("content") or ""
                if content and first is None:
                    first = time.perf_counter() - started
                parts.append(content)
                if message.get("done") is True:
                    done, server_ttft = True, server_first_token(message)
                error = error or str(message.get("error") or "")
    except (aiohttp.ClientError, orjson.JSONDecodeError, TimeoutError) as exc:
        return failure(started, repr(exc)), ""
    ok = done and not error
    error = error or ("" if done else "the stream ended without done")
    total = time.perf_counter() - started
    return Record(0, 0, 0, backend, first, total, ok, error, server_ttft), "".join(parts)


def server_first_token(done: dict[str, Any]) -> float | None:
    total, generating = done.get("total_duration"), done.get("eval_duration")
    if not isinstance(total, int) or not isinstance(generating, int):
        return None
    return (total - generating) / 1e9


def failure(started: float, error: str, backend: str = "") -> Record:
    return Record(0, 0, 0, backend, None, time.perf_counter() - started, False, error)


async def converse(
    session: aiohttp.ClientSession, chat: Chat, ports: Sequence[int], turns: itertools.count[int]
) -> list[Record]:
    messages = [{"role": "system", "content": chat.system}]
    records = []
    for turn, question in enumerate(chat.questions):
        messages.append({"role": "user", "content": question})
        instance = next(turns) % len(ports)
        record, answer = await ask(session, ports[instance], chat.model, messages)
        record.chat, record.turn, record.instance = chat.id, turn, instance
        records.append(record)
        if not record.ok:
            break
        messages.append({"role": "assistant", "content": answer})
        await asyncio.sleep(chat.think_s[turn])
    return records


async def drive(session: aiohttp.ClientSession, work: Workload, ports: list[int]) -> list[Record]:
    """``work.clients`` clients, each taking the next conversation when done with one."""
    queue = list(reversed(work.chats))
    turns = itertools.count()
    records: list[Record] = []

    async def client(index: int) -> None:
        await asyncio.sleep(index * 0.05)
        while queue:
            records.extend(await converse(session, queue.pop(), ports, turns))

    await asyncio.gather(*(client(i) for i in range(work.clients)))
    return records
