"""The relay at the ASGI level: hand-written upstream bodies, receive and send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from cortex.dialects.ollama.passthrough import OllamaPassthrough
from cortex.stream.core import RelayLimits
from cortex.stream.encode import NDJSON, SSE, Framing
from cortex.stream.pull import pull as relay
from cortex.stream.response import Attempt, RelayResponse

LIMITS = RelayLimits(
    first_byte=1.0, idle=0.3, heartbeat=0.1, max_line_bytes=1024, max_response_bytes=4096
)
TOKEN = b'{"message":{"role":"assistant","content":"ta\xc3\xb1"},"done":false}\n'
DONE = b'{"message":{"role":"assistant","content":""},"done_reason":"stop","done":true}\n'


class ScriptedBody:
    """An upstream body fed by the test; ``None`` in the queue means stall forever."""

    def __init__(self, chunks: list[bytes | None]) -> None:
        self.started_at = asyncio.get_running_loop().time()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for chunk in chunks:
            self.queue.put_nowait(chunk)
        self.reads = 0
        self.closed = asyncio.Event()

    async def read(self) -> bytes:
        chunk = await self.queue.get()
        if chunk is None:
            await asyncio.Event().wait()
        self.reads += 1
        return chunk or b""


class Client:
    """Records what the response sends; can disconnect or block its writes."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.disconnect = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.wrote = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()
        self.messages.append(message)
        self.wrote.set()

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def finished(self) -> bool:
        return bool(self.messages) and self.messages[-1].get("more_body") is False


class OneUpstream:
    """A response source with a single scripted upstream and no second chance."""

    def __init__(self, body: ScriptedBody, framing: Framing) -> None:
        self._body = body
        self._framing = framing

    def retry(self, exc: Exception) -> bool:
        return False

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[Attempt]:
        translator = OllamaPassthrough(self._framing)
        try:
            yield Attempt(parts=relay(self._body, translator, LIMITS), error_frame=translator.error)
        finally:
            self._body.closed.set()


def respond(body: ScriptedBody, framing: Framing = NDJSON) -> RelayResponse:
    return RelayResponse(
        OneUpstream(body, framing), None, media_type=framing.media_type, dialect="ollama"
    )


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def ndjson_lines(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body.splitlines()]


def test_lines_cut_across_chunks_and_inside_utf8_reach_the_client_whole() -> None:
    async def scenario() -> None:
        stream = TOKEN + TOKEN + DONE
        cut = TOKEN.index(b"\xc3") + 1
        chunks: list[bytes | None] = [
            stream[:cut],
            stream[cut : len(TOKEN) + 5],
            stream[len(TOKEN) + 5 :],
            b"",
        ]
        client = Client()
        await respond(ScriptedBody(chunks))({}, client.receive, client.send)
        assert client.status == 200
        assert client.body == stream
        assert client.finished

    run(scenario)


def test_each_complete_line_is_sent_as_soon_as_it_arrives() -> None:
    async def scenario() -> None:
        body = ScriptedBody([])
        client = Client()
        task = asyncio.create_task(respond(body)({}, client.receive, client.send))
        body.queue.put_nowait(TOKEN[:10])
        await asyncio.sleep(0.02)
        assert client.messages == []
        body.queue.put_nowait(TOKEN[10:])
        await asyncio.sleep(0.02)
        assert client.body == TOKEN
        body.queue.put_nowait(DONE)
        body.queue.put_nowait(b"")
        await task
        assert client.body == TOKEN + DONE

    run(scenario)


def test_upstream_closing_without_done_line_ends_with_in_band_error() -> None:
    async def scenario() -> None:
        client = Client()
        await respond(ScriptedBody([TOKEN, b""]))({}, client.receive, client.send)
        lines = ndjson_lines(client.body)
        assert lines[0]["message"]["content"] == "tañ"
        assert "closed the stream before the answer was complete" in lines[-1]["error"]
        assert client.finished

    run(scenario)


def test_idle_timeout_mid_stream_is_an_explicit_error_not_a_quiet_end() -> None:
    async def scenario() -> None:
        client = Client()
        await respond(ScriptedBody([TOKEN, None]))({}, client.receive, client.send)
        lines = ndjson_lines(client.body)
        assert len(lines) == 2
        assert "went silent" in lines[-1]["error"]

    run(scenario)


def test_first_byte_timeout_before_any_data_is_a_504_status() -> None:
    async def scenario() -> None:
        client = Client()
        await respond(ScriptedBody([None]))({}, client.receive, client.send)
        assert client.status == 504
        assert "sent nothing within 1 s" in orjson.loads(client.body)["error"]

    run(scenario)


def test_sse_sends_heartbeats_while_the_model_is_silent_then_data() -> None:
    async def scenario() -> None:
        body = ScriptedBody([])
        client = Client()
        task = asyncio.create_task(respond(body, SSE)({}, client.receive, client.send))
        await asyncio.sleep(0.35)
        body.queue.put_nowait(TOKEN + DONE)
        body.queue.put_nowait(b"")
        await task
        text = client.body.decode()
        assert text.startswith(": ping\n\n")
        assert text.endswith("data: " + DONE.decode().strip() + "\n\n")
        assert dict(client.messages[0]["headers"])[b"content-type"] == b"text/event-stream"

    run(scenario)


def test_sse_failure_after_start_is_an_error_event() -> None:
    async def scenario() -> None:
        client = Client()
        await respond(ScriptedBody([TOKEN, b""]), SSE)({}, client.receive, client.send)
        events = client.body.decode().split("\n\n")
        assert events[0].startswith("data: {")
        assert events[1].startswith("event: error\ndata: {")
        assert "error" in orjson.loads(events[1].split("data: ", 1)[1])

    run(scenario)


def test_upstream_error_line_is_forwarded_and_ends_the_stream() -> None:
    async def scenario() -> None:
        error = b'{"error":"model runner crashed"}\n'
        client = Client()
        await respond(ScriptedBody([TOKEN + error + TOKEN, None]))({}, client.receive, client.send)
        assert client.body == TOKEN + error

    run(scenario)


def test_non_json_line_stops_the_stream_after_the_good_lines() -> None:
    async def scenario() -> None:
        client = Client()
        await respond(ScriptedBody([TOKEN + b"<html>oops\n" + DONE, b""]))(
            {}, client.receive, client.send
        )
        lines = ndjson_lines(client.body)
        assert lines[0]["message"]["content"] == "tañ"
        assert "not a JSON object" in lines[1]["error"]
        assert len(lines) == 2

    run(scenario)


def test_client_disconnect_closes_the_upstream_at_once() -> None:
    async def scenario() -> None:
        body = ScriptedBody([TOKEN, None])
        client = Client()
        task = asyncio.create_task(respond(body)({}, client.receive, client.send))
        await asyncio.sleep(0.05)
        assert client.body == TOKEN
        client.disconnect.set()
        await asyncio.wait_for(body.closed.wait(), 0.5)
        await task

    run(scenario)


def test_a_client_that_stops_reading_stops_the_upstream_reads() -> None:
    async def scenario() -> None:
        body = ScriptedBody([TOKEN] * 50 + [DONE, b""])
        client = Client()
        client.writable.clear()
        task = asyncio.create_task(respond(body)({}, client.receive, client.send))
        await asyncio.sleep(0.2)
        assert body.reads == 1, "the relay read ahead of a client that is not writing"
        client.writable.set()
        await task
        assert body.reads == 52
        assert client.body == TOKEN * 50 + DONE

    run(scenario)


def test_time_spent_waiting_for_a_slow_client_is_not_upstream_silence() -> None:
    async def scenario() -> None:
        body = ScriptedBody([TOKEN, TOKEN, DONE, b""])
        client = Client()
        client.writable.clear()
        task = asyncio.create_task(respond(body)({}, client.receive, client.send))
        await asyncio.sleep(LIMITS.idle * 2)
        client.writable.set()
        await task
        assert client.body == TOKEN + TOKEN + DONE

    run(scenario)


def test_heartbeats_keep_coming_through_a_long_first_byte_wait() -> None:
    async def scenario() -> None:
        client = Client()
        await respond(ScriptedBody([None]), SSE)({}, client.receive, client.send)
        text = client.body.decode()
        assert text.count(": ping\n\n") >= 5
        assert text.endswith("\n\n")
        assert "event: error\ndata: " in text
        assert "sent nothing within 1 s" in text

    run(scenario)


async def until(client: Client, condition: Callable[[], bool]) -> None:
    """Wait, write by write, until what the client got meets ``condition``."""
    while not condition():
        client.wrote.clear()
        await client.wrote.wait()


def test_cancelling_the_request_closes_the_upstream_and_leaves_no_task() -> None:
    async def scenario() -> None:
        body = ScriptedBody([TOKEN, None])
        client = Client()
        before = asyncio.all_tasks()
        task = asyncio.create_task(respond(body)({}, client.receive, client.send))
        await until(client, lambda: client.body == TOKEN)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert body.closed.is_set(), "the upstream outlived its request"
        assert asyncio.all_tasks() == before

    run(scenario)


def test_the_drain_deadline_ends_a_stream_with_an_explicit_error() -> None:
    async def scenario() -> None:
        body = ScriptedBody([TOKEN, None])
        client = Client()
        stopping = asyncio.get_running_loop().create_future()
        response = RelayResponse(
            OneUpstream(body, NDJSON),
            None,
            media_type=NDJSON.media_type,
            dialect="ollama",
            stopping=stopping,
        )
        task = asyncio.create_task(response({}, client.receive, client.send))
        await until(client, lambda: client.body == TOKEN)
        stopping.set_result(None)
        await task
        assert body.closed.is_set()
        assert "shutting down" in ndjson_lines(client.body)[-1]["error"]
        assert client.finished
        assert not stopping._callbacks, "a finished answer still watches the shared future"  # type: ignore[attr-defined]

    run(scenario)
