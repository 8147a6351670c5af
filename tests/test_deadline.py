"""A deadline is judged on what arrived in time, not on when the loop got round to reading it
(deadline.py): uvloop runs due timers before it reads the sockets that became readable
while another callback held the loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
import uvloop

from cortex.deadline import AfterReads, Deadline
from cortex.dialects.ollama.passthrough import OllamaPassthrough
from cortex.stream.core import RelayLimits
from cortex.stream.encode import NDJSON
from cortex.stream.ends import Sink
from cortex.stream.push import Push

FIRST_BYTE = 0.05
LIMITS = RelayLimits(
    first_byte=FIRST_BYTE, idle=5.0, heartbeat=5.0, max_line_bytes=1024, max_response_bytes=4096
)
BODY = (
    b'{"message":{"role":"assistant","content":"hola"},"done":false}\n'
    b'{"message":{"role":"assistant","content":""},"done":true}\n'
)
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


class Upstream:
    """A pushing upstream whose bytes come from a real socket."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.sink: Sink | None = None

    def push(self, sink: Sink) -> None:
        self.sink = sink

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def close(self) -> None:
        pass

    def release(self) -> None:
        self.sink = None


def run(loop_name: str, scenario: Callable[[], object]) -> object:
    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(asyncio.wait_for(scenario(), 10))  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_an_answer_that_came_in_time_while_the_loop_was_busy_is_no_timeout(
    loop_name: str,
) -> None:
    """The upstream's bytes reach the kernel before the first-byte deadline, while another
    connection's callback holds the loop past it; the answer must be relayed, not end
    with "sent nothing within" (it did, on uvloop)."""

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        upstream_end, our_end = socket.socketpair()
        poke, busy_end = socket.socketpair()
        pushed: list[Push] = []
        made = asyncio.Event()

        class FromUpstream(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                assert upstream.sink is not None
                upstream.sink.data(data)
                upstream.sink.end()

        class Busy(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                upstream.started_at = loop.time()
                pushed.append(Push(upstream, OllamaPassthrough(NDJSON), LIMITS))
                made.set()
                upstream_end.sendall(BODY)  # in time: the deadline is FIRST_BYTE away
                time.sleep(3 * FIRST_BYTE)  # the loop is held past it

        upstream = Upstream(loop.time())
        transports = [
            (await loop.create_connection(FromUpstream, sock=our_end))[0],
            (await loop.create_connection(Busy, sock=busy_end))[0],
        ]
        try:
            poke.sendall(b"go")
            await made.wait()
            return b"".join([part async for part in pushed[0].parts()])
        finally:
            pushed[0].close()
            for transport in transports:
                transport.close()
            upstream_end.close()
            poke.close()

    assert run(loop_name, scenario) == BODY


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_a_callback_after_the_reads_comes_after_what_they_woke(loop_name: str) -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        woken = loop.create_future()

        async def reader() -> None:
            await woken
            order.append("task woken by a read")

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        AfterReads(loop, lambda: order.append("after reads"))
        loop.call_soon(woken.set_result, None)  # as a read in the same turn would
        await task
        await asyncio.sleep(0.01)
        return order

    assert run(loop_name, scenario) == ["task woken by a read", "after reads"]


def test_a_cancelled_callback_after_the_reads_never_comes() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        called: list[str] = []
        AfterReads(loop, lambda: called.append("late")).cancel()
        await asyncio.sleep(0.01)
        return called

    assert run("uvloop", scenario) == []


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_a_deadline_is_judged_after_reading_what_came_before_it(loop_name: str) -> None:
    """As the upstream client's deadline for an answer's head (backends/h1.py) is."""

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        sender, receiver = socket.socketpair()
        poke, busy_end = socket.socketpair()
        seen: list[str] = []
        judged = loop.create_future()

        class Receiver(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                seen.append("head")

        class Busy(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                Deadline(loop, loop.time() + FIRST_BYTE, lambda: judged.set_result(list(seen)))
                sender.sendall(b"HTTP/1.1 200 OK\r\n")
                time.sleep(3 * FIRST_BYTE)

        transports = [
            (await loop.create_connection(Receiver, sock=receiver))[0],
            (await loop.create_connection(Busy, sock=busy_end))[0],
        ]
        try:
            poke.sendall(b"go")
            return await judged  # type: ignore[no-any-return]
        finally:
            for transport in transports:
                transport.close()
            sender.close()
            poke.close()

    assert run(loop_name, scenario) == ["head"]


def test_a_cancelled_deadline_never_comes() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        called: list[str] = []
        Deadline(loop, loop.time(), lambda: called.append("late")).cancel()
        await asyncio.sleep(0.02)
        return called

    assert run("uvloop", scenario) == []
