"""A soak over one gateway per upstream dialect whose pool of upstream connections is reused:
faults and normal answers interleaved in a fixed pseudo-random order.

Each scenario leaves some state behind on a kept-alive upstream connection or a kept-alive
client connection if Córtex lets it leak: a paused transport, a sink, a timer, a slice
turn, half an answer. So every request must end, within the client's timeout, with the
whole answer or an explicit error in its dialect (``tests/invariant.py``), and the normal
request that follows each scenario, on a connection the pool hands back, must give the
whole answer. The client's timeout is well below the gateways' first-byte and idle
timeouts for normal answers: a request stuck on a pooled connection fails the test as a
hang, and one that the gateway's timeout rescues fails it as an error.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import RunningGateway, gateway_per_dialect
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.invariant import (
    FRAMINGS,
    ClientFraming,
    Reply,
    Violation,
    judge,
    parse_response,
    request_bytes,
)

KINDS = ("ollama", "openai")
FIRST_BYTE = 1.5  # the gateways' first-byte timeout: only the slow-upstream scenario waits it
IDLE = 1.5
LINE = 64 * 1024  # max_line_bytes
QUICK = 1.0  # the client's patience for an answer that should come at once
# for one that ends with the gateway's first-byte timeout, or that is big (a Responses
# stream of HUGE is 1 MB, through 4 KiB socket buffers)
PATIENT = FIRST_BYTE + 2.5
TOKENS = ("Había", " una", " vez")
NORMAL = "".join(TOKENS)
HUGE_TOKENS = tuple(f"{i:05d}" + "ñ" * 600 for i in range(160))  # ~190 kB, lines < LINE
HUGE = "".join(HUGE_TOKENS)
LONG = "x" * (4 * LINE)  # a line over the bound
ANSWER_BOUND = 512 * 1024  # max_response_bytes
BIG_TOKENS = tuple(f"{i:05d}" + "z" * 2000 for i in range(300))  # ~600 kB, lines < LINE
BIG = "".join(BIG_TOKENS)
UTF8 = ("Ñu", "ñoa", " 🦄")
STEPS = 96
SMALL = 4096  # socket buffers
SEED = 20261205


@dataclass(frozen=True)
class Scenario:
    name: str
    script: dict[str, Any]
    expect: str | None  # the answer's text; None: an explicit error
    patience: float = QUICK
    hang_up: bool = False  # the client leaves mid-answer (streams only)
    keep_alive: bool = False  # a normal request follows on the same client connection
    # a whole answer in the upstream's own dialect is relayed as it came, bounded by
    # max_response_bytes only: no line in it is over a bound
    relayed_whole: str | None = None
    streamed: str | None = None  # the answer, when it is streamed; an error when held whole
    slow_reader: bool = False  # the client reads a little at a time through a small buffer

    def expected(self, framing: ClientFraming, kind: str) -> str | None:
        if not framing.stream and framing.dialect == kind and self.relayed_whole is not None:
            return self.relayed_whole
        if self.streamed is not None:
            return self.streamed if framing.stream else None
        return self.expect


SCENARIOS = (
    Scenario("normal", {"tokens": TOKENS}, NORMAL),
    Scenario("line-over-the-bound", {"tokens": (LONG,)}, None, relayed_whole=LONG),
    Scenario(
        "line-over-the-bound-after-huge",
        {"tokens": (*HUGE_TOKENS, LONG)},
        None,
        relayed_whole=HUGE + LONG,
    ),
    Scenario("drop-mid", {"tokens": TOKENS, "fault": "reset_mid", "fault_after": 2}, None),
    Scenario("close-mid", {"tokens": TOKENS, "fault": "close_mid", "fault_after": 2}, None),
    Scenario("slow-first-byte", {"header_delay": 30.0}, None, patience=PATIENT),
    Scenario("stall-before-first", {"fault": "stall_before_first"}, None, patience=PATIENT),
    Scenario("huge-at-once", {"tokens": HUGE_TOKENS}, HUGE, patience=PATIENT),
    # over max_response_bytes: streamed as it comes it is no fault; held whole it is one
    Scenario("over-the-answer-bound", {"tokens": BIG_TOKENS}, None, streamed=BIG, patience=PATIENT),
    Scenario("slow-reader", {"tokens": HUGE_TOKENS}, HUGE, PATIENT, slow_reader=True),
    Scenario("status-500", {"fault": "status", "status": 500}, None),
    Scenario("error-line-mid", {"tokens": TOKENS, "error_line_after": 2}, None),
    Scenario(
        "split-utf8", {"tokens": UTF8, "fault": "split_utf8", "split_pause": 0.001}, "".join(UTF8)
    ),
    Scenario(
        "stall-mid",
        {"tokens": TOKENS, "fault": "stall_mid", "fault_after": 2},
        None,
        patience=PATIENT,
    ),
    Scenario("client-hangs-up", {"count": 400, "delay": 0.005}, None, hang_up=True),
    Scenario("keep-alive-normal", {"tokens": TOKENS}, NORMAL, keep_alive=True),
    Scenario("keep-alive-huge", {"tokens": HUGE_TOKENS}, HUGE, PATIENT, keep_alive=True),
    Scenario(
        "keep-alive-over-the-bound", {"tokens": (LONG,)}, None, keep_alive=True, relayed_whole=LONG
    ),
)
SLOW = frozenset({"slow-first-byte", "stall-before-first", "stall-mid"})


@pytest.fixture(scope="module")
def rig() -> Iterator[tuple[FakeOllama, dict[str, RunningGateway]]]:
    with (
        FakeOllama() as fake,
        gateway_per_dialect(
            fake,
            first_byte_timeout=FIRST_BYTE,
            idle_timeout=IDLE,
            load_timeout=0,
            connect_timeout=1.0,
            max_line_bytes=LINE,
            max_response_bytes=ANSWER_BOUND,
            client_socket_buffer=SMALL,  # writing to clients pauses often
            heartbeat_interval=0.4,  # Ollama's SSE beats before a late first byte
        ) as gateways,
    ):
        yield fake, gateways


def read_message(sock: socket.socket, timeout: float, slowly: bool = False) -> tuple[Reply, bytes]:
    """One HTTP response off ``sock``, read to its end by its framing (the connection may
    stay open), within ``timeout``; and what came after it. ``slowly``: a little at a time."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        _, sep, rest = bytes(data).partition(b"\r\n\r\n")
        if sep:
            reply = parse_response(bytes(data))
            if reply.complete and _framed(reply):
                return reply, _after(reply, rest)
        if time.monotonic() > deadline:
            raise Violation(f"no end of the response within {timeout:g} s: {bytes(data[:300])!r}")
        if slowly:
            time.sleep(0.001)
        try:
            chunk = sock.recv(SMALL if slowly else 65536)
        except TimeoutError:
            raise Violation(f"no end of the response within {timeout:g} s") from None
        if not chunk:
            return parse_response(bytes(data)), b""
        data += chunk


def _framed(reply: Reply) -> bool:
    return "content-length" in reply.headers or "chunked" in reply.headers.get(
        "transfer-encoding", ""
    )


def _after(reply: Reply, rest: bytes) -> bytes:
    if "content-length" in reply.headers:
        return rest[int(reply.headers["content-length"]) :]
    end = rest.find(b"\r\n0\r\n\r\n")
    return rest[end + 7 :] if end >= 0 else b""


def payload(framing: ClientFraming) -> dict[str, Any]:
    return framing.payload(DEFAULT_MODEL)


def check(framing: ClientFraming, reply: Reply, expect: str | None, what: str) -> None:
    try:
        verdict = judge(framing, reply, expect)
    except Violation as exc:
        raise Violation(f"{what}: {exc}; {reply.raw[:300]!r}") from None
    wanted = "error" if expect is None else "complete"
    assert verdict.outcome == wanted, f"{what}: {verdict.outcome} ({verdict.error}) {wanted=}"


def ask(
    gateway: RunningGateway,
    framing: ClientFraming,
    expect: str | None,
    patience: float,
    what: str,
    slowly: bool = False,
) -> None:
    with socket.socket() as sock:
        if slowly:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
        sock.settimeout(patience)
        sock.connect((gateway.host, gateway.port))
        sock.sendall(request_bytes(framing, payload(framing)))
        try:
            reply, _ = read_message(sock, patience, slowly)
        except Violation as exc:
            raise Violation(f"{what}: {exc}") from None
    check(framing, reply, expect, what)


def hang_up(gateway: RunningGateway, framing: ClientFraming, what: str) -> None:
    """Read a streamed answer's first bytes, then leave; leave a whole one before it came."""
    with socket.create_connection((gateway.host, gateway.port), timeout=QUICK) as sock:
        sock.sendall(request_bytes(framing, payload(framing)))
        if not framing.stream:
            time.sleep(0.2)
            return
        got = b""
        while b"\r\n\r\n" not in got or len(got) < 600:
            chunk = sock.recv(4096)
            assert chunk, f"{what}: the answer ended before the client could leave: {got!r}"
            got += chunk
        assert b" 200 " in got.split(b"\r\n", 1)[0], f"{what}: {got[:300]!r}"


def on_one_connection(
    gateway: RunningGateway,
    framing: ClientFraming,
    kind: str,
    first: Scenario,
    set_script: Callable[[dict[str, Any]], None],
    what: str,
) -> None:
    """``first``, then a normal request on the same kept-alive client connection."""
    with socket.create_connection((gateway.host, gateway.port), timeout=first.patience) as sock:
        sock.sendall(request_bytes(framing, payload(framing), keep_alive=True))
        reply, extra = read_message(sock, first.patience)
        assert not extra, f"{what}: bytes after the first response: {extra[:200]!r}"
        check(framing, reply, first.expected(framing, kind), what + " (first on the connection)")
        set_script({"tokens": TOKENS})
        sock.sendall(request_bytes(framing, payload(framing)))
        second, _ = read_message(sock, QUICK)
    check(framing, second, NORMAL, what + " (second on the connection)")


def plan(seed: int) -> list[tuple[Scenario, ClientFraming, str]]:
    """A fixed order of scenarios, each on some client framing and upstream dialect: each
    quick one at least once per upstream dialect, each slow one (a timeout waited) once."""
    chooser = random.Random(seed)
    quick = [s for s in SCENARIOS if s.name not in SLOW]
    steps = [(s, chooser.choice(FRAMINGS), kind) for s in quick for kind in KINDS]
    steps += [
        (s, chooser.choice(FRAMINGS), chooser.choice(KINDS)) for s in SCENARIOS if s.name in SLOW
    ]
    while len(steps) < STEPS:
        steps.append((chooser.choice(quick), chooser.choice(FRAMINGS), chooser.choice(KINDS)))
    chooser.shuffle(steps)
    return steps


def test_pooled_connections_survive_every_fault_in_any_order(
    rig: tuple[FakeOllama, dict[str, RunningGateway]],
) -> None:
    fake, gateways = rig

    def set_script(script: dict[str, Any]) -> None:
        fake.script = Script(**script)

    for index, (scenario, framing, kind) in enumerate(plan(SEED)):
        gateway = gateways[kind]
        what = f"step {index}: {scenario.name} for {framing.name} via {kind}"
        set_script(scenario.script)
        if scenario.hang_up:
            hang_up(gateway, framing, what)
        elif scenario.keep_alive:
            on_one_connection(gateway, framing, kind, scenario, set_script, what)
        else:
            expect = scenario.expected(framing, kind)
            ask(gateway, framing, expect, scenario.patience, what, scenario.slow_reader)
        set_script({"tokens": TOKENS})
        after = ClientFraming("after", framing.dialect, stream=not framing.stream)
        ask(gateway, after, NORMAL, QUICK, what + ", then a normal answer")
