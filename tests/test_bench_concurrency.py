"""The pure parts of bench/concurrency.py: added percentiles, gaps, the pairing of direct
and gateway rounds, the workers' estimate, the profile's own-time count, the fake
upstream's tool-call pieces, the load generator's token arrivals, and Python's floor (the
byte pipe) over real sockets."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

# appended, not first: the standard library's profile must win over bench/profile.py
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))

from fake_upstream import tool_pieces
from harness.loadgen import StreamConnection, chat_request
from pipe_relay import client_side
from suites.concurrency.added import added, gaps, paired, pooled_gaps
from suites.concurrency.hotspots import leaves
from suites.concurrency.scaling import FIGURES, estimate, over_rounds


def test_gaps_are_between_consecutive_tokens_not_before_the_first() -> None:
    assert gaps([0.005, 0.010, 0.010, 0.020]) == pytest.approx([0.005, 0.0, 0.010])
    assert gaps([0.005]) == []
    assert gaps([]) == []


def test_pooled_gaps_join_the_streams_without_a_gap_across_them() -> None:
    assert pooled_gaps([[1.0, 2.0], [10.0, 13.0, 14.0]]) == [1.0, 3.0, 1.0]


def test_added_is_the_gateways_percentile_minus_the_direct_ones() -> None:
    direct = [1.0, 2.0, 3.0, 4.0]
    gateway = [2.0, 2.5, 3.5, 10.0]
    assert added(direct, gateway, 50) == pytest.approx(0.5)  # nearest rank: 2.5 - 2.0
    assert added(direct, gateway, 99) == pytest.approx(6.0)  # 10.0 - 4.0
    with pytest.raises(ValueError):
        added([], gateway, 50)


def test_paired_pools_the_rounds_and_takes_the_median_of_each_rounds_own_figure() -> None:
    direct = [[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]]
    gateway = [[2.0, 2.0], [3.0, 3.0], [6.0, 6.0]]
    got = paired(direct, gateway, 50)
    assert got["median_of_rounds"] == pytest.approx(1.0)  # rounds add 1, 2 and 1
    assert got["direct"] == 1.0 and got["gateway"] == 3.0
    assert got["pooled"] == pytest.approx(2.0)


def test_paired_refuses_rounds_that_do_not_match() -> None:
    with pytest.raises(ValueError):
        paired([[1.0]], [[1.0], [2.0]], 99)
    with pytest.raises(ValueError):
        paired([], [], 99)


def test_workers_estimate_counts_cpu_per_request_and_the_busiest_worker() -> None:
    one = {"requests_per_s": 1000.0, "cpu_ms_per_request": 0.3, "worker_cpu_share": [1.0]}
    even = {"requests_per_s": 1200.0, "cpu_ms_per_request": 0.3, "worker_cpu_share": [0.5, 0.5]}
    got = estimate(one, even)
    assert got["wall"] == pytest.approx(1.2)
    assert got["estimated"] == pytest.approx(2.0)
    uneven = {"requests_per_s": 900.0, "cpu_ms_per_request": 0.4, "worker_cpu_share": [0.75, 0.25]}
    got = estimate(one, uneven)
    assert got["spread"] == pytest.approx(2 / 3)
    assert got["estimated"] == pytest.approx(2 * 0.75 * 2 / 3)


def test_workers_spread_is_the_busiest_worker_of_each_round_not_a_mean_by_worker() -> None:
    def run(shares: list[float]) -> dict[str, Any]:
        return {k: 1.0 for k in FIGURES} | {"worker_cpu_share": shares}

    found = over_rounds([run([0.7, 0.3]), run([0.3, 0.7]), run([0.6, 0.4])])
    assert found["worker_cpu_share"] == pytest.approx([8 / 15, 7 / 15])
    assert found["busiest_per_round"] == [0.7, 0.7, 0.6]
    assert found["busiest_share"] == 0.7
    one = {"requests_per_s": 1.0, "cpu_ms_per_request": 1.0, "worker_cpu_share": [1.0]}
    assert estimate(one, found)["spread"] == pytest.approx(1 / 1.4)


def test_leaves_charge_each_sample_to_its_innermost_frame() -> None:
    raw = (
        "run (a.py:1);write (/x/lib/python3.11/site-packages/cortex/conduit.py:81) 3\n"
        "run (a.py:1);send (/work/src/cortex/h1.py:10) 1\n"
        "other (b.py:2);write (/x/lib/python3.11/site-packages/cortex/conduit.py:81) 4\n"
    )
    assert leaves(raw) == [
        ("write (cortex/conduit.py:81)", 7 / 8),
        ("send (cortex/h1.py:10)", 1 / 8),
    ]


@pytest.mark.parametrize("count", [2, 3, 200])
def test_tool_pieces_make_one_json_object_in_as_many_pieces(count: int) -> None:
    pieces = tool_pieces(count)
    assert len(pieces) == count
    assert orjson.loads("".join(pieces)) == {"query": "".join(f"p{i} " for i in range(count - 2))}


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def test_a_timed_request_notes_one_arrival_per_token_sharing_a_read() -> None:
    async def answer() -> Any:
        connection = StreamConnection()
        connection.connection_made(_Transport())  # type: ignore[arg-type]
        request = chat_request("127.0.0.1", 1, 3, timed=True)
        pending = asyncio.ensure_future(connection.request(request))
        await asyncio.sleep(0)
        line = b'{"message":{"role":"assistant","content":"tok%d "},"done":false}\n'
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        connection.data_received(head + _chunk(line % 0 + line % 1))  # two tokens, one read
        connection.data_received(_chunk(line % 2))
        done = b'{"message":{"role":"assistant","content":""},"done":true}\n'
        connection.data_received(_chunk(done) + b"0\r\n\r\n")
        return await pending

    result = asyncio.run(answer())
    assert result.ok, result.error
    assert len(result.arrivals) == 3  # the final line's empty content is no token
    assert result.arrivals[0] == result.arrivals[1] <= result.arrivals[2]
    assert result.ttfc == result.arrivals[0]


def test_an_untimed_request_notes_no_arrivals() -> None:
    assert not chat_request("127.0.0.1", 1, 3).timed


def test_the_byte_pipe_relays_both_ways_and_passes_the_upstreams_close_on() -> None:
    async def through_the_pipe() -> tuple[bytes, bytes]:
        got = bytearray()

        async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.extend(await reader.readexactly(10))
            writer.write(b"answer: " + bytes(got))
            await writer.drain()
            writer.close()

        model = await asyncio.start_server(upstream, "127.0.0.1", 0)
        tasks: set[asyncio.Task[None]] = set()
        address = model.sockets[0].getsockname()[:2]
        loop = asyncio.get_running_loop()
        pipe = await loop.create_server(lambda: client_side(address, tasks), "127.0.0.1", 0)
        async with model, pipe:
            reader, writer = await asyncio.open_connection(*pipe.sockets[0].getsockname()[:2])
            writer.write(b"01234")  # may come before the pipe's upstream connection is open
            await asyncio.sleep(0.05)
            writer.write(b"56789")
            answer = await asyncio.wait_for(reader.read(), 5)  # the upstream's close reaches us
            writer.close()
            return bytes(got), answer

    got, answer = asyncio.run(through_the_pipe())
    assert got == b"0123456789"
    assert answer == b"answer: 0123456789"
