"""`cortex chat`: stream answers to a terminal, from a running Córtex or the embedded model."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

import aiohttp
import orjson

from ..backends.local import LocalBackend
from ..errors import CortexError

Lines = Callable[[dict[str, Any]], AsyncIterator[bytes]]
T = TypeVar("T")


class ChatFailed(Exception):
    """The answer could not be had; the message says why."""


@dataclass
class Answer:
    text: str = ""
    pieces: int = 0
    sent_at: float = field(default_factory=time.monotonic)
    first_at: float | None = None
    done: dict[str, Any] | None = None

    def stats(self) -> str:
        end = time.monotonic()
        first = self.first_at or end
        tokens = (self.done or {}).get("eval_count") or self.pieces
        rate = tokens / (end - first) if end > first else 0.0
        return (
            f"{(first - self.sent_at) * 1000:.0f} ms to first token · "
            f"{rate:.1f} tokens/s · {tokens} tokens · {end - self.sent_at:.2f} s total"
        )


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def remote_lines(url: str, api_key: str | None = None) -> Lines:
    async def lines(payload: dict[str, Any]) -> AsyncIterator[bytes]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    url.rstrip("/") + "/api/chat", json=payload, headers=_auth(api_key)
                ) as response,
            ):
                if response.status >= 400:
                    body = await response.read()
                    raise ChatFailed(f"HTTP {response.status}: {_error_text(body)}")
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for line in complete:
                        if line.strip():
                            yield line
                if buffer.strip():
                    yield buffer
        except aiohttp.ClientConnectorError:
            raise ChatFailed(
                f"cannot connect to Córtex at {url}; is `cortex serve` running?"
            ) from None

    return lines


async def list_models(url: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """The entries of a running Córtex's ``/api/tags``."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.get(url.rstrip("/") + "/api/tags", headers=_auth(api_key)) as response,
        ):
            body = await response.read()
    except aiohttp.ClientError:
        raise ChatFailed(f"cannot connect to Córtex at {url}; is `cortex serve` running?") from None
    if response.status >= 400:
        raise ChatFailed(f"HTTP {response.status}: {_error_text(body)}")
    return list(orjson.loads(body).get("models") or [])


async def with_local(backend: LocalBackend, talk: Coroutine[Any, Any, T]) -> T | bool:
    """Run a chat on the embedded model, in its own process for as long as the chat lasts."""
    try:
        await backend.start()
        if backend.problem is not None:
            talk.close()
            sys.stderr.write(f"error: {backend.problem}\n")
            return False
        return await talk
    finally:
        await backend.close()


def local_lines(backend: LocalBackend) -> Lines:
    async def lines(payload: dict[str, Any]) -> AsyncIterator[bytes]:
        payload = {**payload, "model": payload.get("model") or backend.name}
        try:
            async with backend.open("POST", "/api/chat", orjson.dumps(payload)) as body:
                buffer = b""
                while chunk := await body.read():
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for line in complete:
                        if line.strip():
                            yield line
        except CortexError as exc:
            raise ChatFailed(exc.message) from None

    return lines


def _error_text(body: bytes) -> str:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return body.decode("utf-8", "replace")[:300]
    return str(error.get("message") if isinstance(error, dict) else error)


async def answer(lines: Lines, payload: dict[str, Any], out: TextIO, raw_json: bool) -> Answer:
    """Stream one answer to ``out`` as it arrives."""
    result = Answer()
    async for line in lines(payload):
        if raw_json:
            out.write(line.decode() + "\n")
            out.flush()
        message = orjson.loads(line)
        if "error" in message:
            raise ChatFailed(str(message["error"]))
        piece = (message.get("message") or {}).get("content") or ""
        if piece:
            result.first_at = result.first_at or time.monotonic()
            result.pieces += 1
            result.text += piece
            if not raw_json:
                out.write(piece)
                out.flush()
        if message.get("done"):
            result.done = message
    if result.done is None:
        raise ChatFailed("the answer ended before it was complete")
    if not raw_json:
        out.write("\n")
    return result


@dataclass
class Session:
    lines: Lines
    model: str | None
    system: str | None
    raw_json: bool
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    history: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.system:
            self.history.append({"role": "system", "content": self.system})

    async def ask(self, prompt: str) -> bool:
        """One turn; False if it failed or was stopped (the turn is then forgotten)."""
        messages = [*self.history, {"role": "user", "content": prompt}]
        payload: dict[str, Any] = {"messages": messages, "stream": True}
        if self.model:
            payload["model"] = self.model
        task = asyncio.ensure_future(answer(self.lines, payload, self.out, self.raw_json))
        loop = asyncio.get_running_loop()
        with suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, task.cancel)
        try:
            result = await task
        except asyncio.CancelledError:
            self.err.write("\n[stopped]\n")
            return False
        except ChatFailed as exc:
            self.err.write(f"\nerror: {exc}\n")
            return False
        finally:
            with suppress(NotImplementedError):
                loop.remove_signal_handler(signal.SIGINT)
        self.history += [messages[-1], {"role": "assistant", "content": result.text}]
        self.err.write(result.stats() + "\n")
        return True

    async def interactive(self, read: Callable[[str], str] = input) -> None:
        while True:
            try:
                prompt = await asyncio.to_thread(read, "› ")
            except (EOFError, KeyboardInterrupt):
                self.err.write("\n")
                return
            if prompt.strip() in ("/exit", "/quit"):
                return
            if prompt.strip():
                await self.ask(prompt)
