"""A pushed answer handed on a slice per turn of the event loop (stream/slices.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from cortex.errors import CortexError
from cortex.stream.slices import SLICE, Sliced


class Upstream:
    """A pushing connection that records what it was asked."""

    started_at = 12.5

    def __init__(self) -> None:
        self.sink: Sliced | None = None
        self.paused = False
        self.calls: list[str] = []

    def push(self, sink: Sliced) -> None:
        self.sink = sink

    def pause(self) -> None:
        self.paused = True
        self.calls.append("pause")

    def resume(self) -> None:
        self.paused = False
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")

    def release(self) -> None:
        self.calls.append("release")


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, object]] = []

    def data(self, chunk: bytes) -> None:
        self.got.append(("data", chunk))

    def end(self, last: bytes = b"") -> None:
        self.got.append(("end", last))

    def fail(self, exc: CortexError) -> None:
        self.got.append(("fail", exc))


def sliced() -> tuple[Sliced, Upstream, Sink]:
    upstream, sink = Upstream(), Sink()
    answer = Sliced(upstream)
    answer.push(sink)
    assert upstream.sink is answer
    assert answer.started_at == 12.5
    return answer, upstream, sink


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def on_a_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run the async test on an event loop of its own (the slices wait for its turns)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def received(sink: Sink) -> bytes:
    return b"".join(c for kind, c in sink.got if kind in ("data", "end") and isinstance(c, bytes))


@on_a_loop
async def test_a_small_chunk_goes_straight_through() -> None:
    answer, upstream, sink = sliced()
    answer.data(b"x" * SLICE)
    answer.end(b"last")
    assert sink.got == [("data", b"x" * SLICE), ("end", b"last")]
    assert upstream.calls == []


@on_a_loop
async def test_a_big_read_is_handed_on_a_slice_a_turn_with_reading_paused() -> None:
    answer, upstream, sink = sliced()
    body = bytes(range(256)) * (SLICE * 3 // 256 + 7)  # three slices and a bit
    answer.data(body)
    assert sink.got == [] and upstream.paused  # nothing yet: the loop turns first
    await turns(1)
    assert sink.got == [("data", body[:SLICE])] and upstream.paused
    await turns(4)
    assert received(sink) == body
    assert [len(c) for _, c in sink.got] == [SLICE, SLICE, SLICE, len(body) - 3 * SLICE]
    assert upstream.calls == ["pause", "pause", "pause", "pause", "resume"]


@on_a_loop
async def test_what_comes_during_the_backlog_follows_it_in_order() -> None:
    answer, upstream, sink = sliced()
    answer.data(b"a" * (SLICE + 1))
    answer.data(b"b")  # a read that was already on its way
    answer.end(b"c" * 10)
    await turns(4)
    assert received(sink) == b"a" * (SLICE + 1) + b"b" + b"c" * 10
    assert sink.got[-1][0] == "end"
    assert "resume" not in upstream.calls  # the answer ended: nothing more to read


@on_a_loop
async def test_a_big_last_read_ends_after_its_slices() -> None:
    answer, _, sink = sliced()
    answer.end(b"z" * (2 * SLICE + 5))
    await turns(4)
    assert [kind for kind, _ in sink.got] == ["data", "data", "end"]
    assert received(sink) == b"z" * (2 * SLICE + 5)


@on_a_loop
async def test_a_failure_comes_after_the_data_read_before_it() -> None:
    answer, upstream, sink = sliced()
    answer.data(b"d" * (SLICE + 1))
    failure = CortexError("the model server closed the connection")
    answer.fail(failure)
    await turns(3)
    assert [kind for kind, _ in sink.got] == ["data", "data", "fail"]
    assert sink.got[-1][1] is failure
    assert "resume" not in upstream.calls


@on_a_loop
async def test_reading_resumes_only_when_the_sink_does_not_hold_it() -> None:
    answer, upstream, _ = sliced()
    answer.data(b"e" * (SLICE + 1))
    answer.pause()  # the client's socket is full
    answer.resume()  # and drains while slices are pending: reading stays paused for them
    assert upstream.paused
    answer.pause()
    await turns(3)
    assert upstream.paused  # the backlog is done, but the sink still holds reading
    answer.resume()
    assert not upstream.paused


@on_a_loop
async def test_closing_drops_the_backlog() -> None:
    answer, upstream, sink = sliced()
    answer.data(b"f" * (3 * SLICE))
    await turns(1)
    answer.close()
    await turns(4)
    assert sink.got == [("data", b"f" * SLICE)]
    assert upstream.calls[-1] == "close"


@on_a_loop
async def test_a_released_answer_leaves_the_connection_alone() -> None:
    """The answer failed on a slice (a line over the bound) with the rest of a whole
    upstream answer still in the backlog; the connection went back to its pool. No
    slice may then pause it: the next answer on it would never be read."""
    answer, upstream, sink = sliced()
    answer.end(b"h" * (4 * SLICE))
    await turns(1)
    answer.release()
    upstream.calls.clear()
    await turns(5)
    assert upstream.calls == []
    assert sink.got == [("data", b"h" * SLICE)]


@on_a_loop
async def test_a_sink_that_closes_the_answer_while_taking_a_slice_gets_no_more() -> None:
    answer, upstream, sink = sliced()

    def data(chunk: bytes) -> None:
        sink.got.append(("data", chunk))
        answer.close()  # the client went while this slice was written

    sink.data = data  # type: ignore[method-assign]
    answer.data(b"g" * (3 * SLICE))
    await turns(4)
    assert sink.got == [("data", b"g" * SLICE)]
    assert upstream.calls.count("close") == 1
