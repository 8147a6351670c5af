"""Upstream faults × client dialect and framing × upstream dialect, against one invariant.

Every case asserts what ``tests/invariant.py`` defines: the client gets the complete,
byte-intact answer with its proper end, or an explicit error (a 4xx/5xx in the dialect's
shape, or an in-band error as the last frame), never a stream that just stops. Faults
that leave the answer whole (cut lines and characters, a late status line, a pause
shorter than the timeouts) must give the answer, byte for byte where Córtex forwards the
upstream's bytes; faults that break it must give an error; and where Córtex gives up on
a stalled upstream, the upstream connection closes.

The client dialects are Ollama's (NDJSON and SSE), OpenAI's chat completions, Anthropic's
Messages and OpenAI's Responses, each streamed and whole; the upstream dialects Ollama's,
OpenAI-compatible (``openai+URL``) and Messages (``anthropic+URL``).

Then: a stream whose headers a heartbeat sent before the upstream answered still ends
explicitly; a line cut at every byte still gives the answer; a client that reads a few
bytes at a time through a tiny receive buffer still gets every byte; a client that
leaves at any stage closes the upstream request; and after all of it the process's file
descriptors and the gateway loops' tasks are back to baseline.

One fake upstream serves the whole module, behind three gateways per upstream dialect
(short timeouts; long ones; short ones with an early heartbeat), all with 4 KiB socket
buffers. Each case names its own model, which picks its script in the fake
(``FakeOllama.scripts``), so the cases run at once, on a few threads (and the ones that
mostly wait, on one each), and the items below only read their results.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Literal

import orjson
import pytest

from cortex.config import Settings
from tests.conftest import RunningGateway
from tests.fakes import FakeOllama, RecordedRequest, Script
from tests.invariant import (
    FRAMINGS,
    STREAMING,
    ClientFraming,
    Reply,
    Verdict,
    Violation,
    exchange,
    judge,
    parse_response,
    request_bytes,
)

FIRST_BYTE = 1.2
IDLE = 0.8
TOKENS = ("Había", " una", " vez", " un", " 🦄", " en", " Ñuñoa")
ANSWER = "".join(TOKENS)
FIXED: dict[str, Any] = {
    "tokens": TOKENS,
    "created_at": "2025-05-30T10:12:43.520736114Z",
    "completion_id": "matrix",
}
KINDS = ("ollama", "openai", "anthropic")
PREFIXES = {"ollama": "", "openai": "openai+", "anthropic": "anthropic+"}
WORKERS = 8

HEARTBEAT = 0.2  # the "beating" gateways' heartbeat interval
Expect = Literal["complete", "error"]
Via = Literal["quick", "patient", "beating"]


@dataclass(frozen=True)
class Variant:
    """An upstream behaviour and what the client must see."""

    script: dict[str, Any]
    expect: Expect | dict[str, Expect]  # or per upstream kind, or per "kind/framing"
    upstream_closed: bool = False  # Córtex must close the (stalled) upstream request itself
    known_bugs: dict[str, str] = field(default_factory=dict)  # "kind/framing" -> xfail reason

    def expected(self, kind: str, framing: str = "") -> Expect:
        if isinstance(self.expect, str):
            return self.expect
        return self.expect.get(f"{kind}/{framing}", self.expect[kind])


HTML = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
WHOLE_NOT_JSON = (
    "Bug: a non-streaming answer passed on as is (api/relaying.py `_whole`) is not checked: "
    "an upstream 200 whose body is not JSON reaches the client as a 200 application/json"
)
WHOLE_PASSTHROUGH_BUGS: dict[str, str] = {}  # fixed: the whole answer is checked to be JSON
# An SSE stream ignores a line that is no event; a whole JSON answer relayed as it came (the
# same-dialect non-streaming pairs; the others stream from the upstream) cannot.
SSE_SKIPS_GARBAGE: dict[str, Expect] = {
    "ollama": "error",
    "openai": "complete",
    "anthropic": "complete",
    "openai/openai-whole": "error",
    "anthropic/anthropic-whole": "error",
}
VARIANTS: dict[str, Variant] = {
    "none": Variant({}, "complete"),
    "split_lines": Variant({"fault": "split_lines", "split_pause": 0.001}, "complete"),
    "split_utf8": Variant({"fault": "split_utf8", "split_pause": 0.001}, "complete"),
    "no_trailing_newline": Variant({"fault": "no_trailing_newline"}, "complete"),
    "header_delay_short": Variant({"header_delay": FIRST_BYTE / 4}, "complete"),
    "header_delay_long": Variant({"header_delay": 30.0}, "error", upstream_closed=True),
    "stall_before_first_short": Variant(
        {"fault": "stall_before_first", "stall": FIRST_BYTE / 4}, "complete"
    ),
    "stall_before_first": Variant({"fault": "stall_before_first"}, "error", upstream_closed=True),
    "stall_mid_short": Variant({"fault": "stall_mid", "stall": IDLE / 4}, "complete"),
    "stall_mid": Variant({"fault": "stall_mid", "fault_after": 2}, "error", upstream_closed=True),
    "reset_before_first": Variant({"fault": "reset_mid", "fault_after": 0}, "error"),
    "reset_mid": Variant({"fault": "reset_mid", "fault_after": 2}, "error"),
    "close_before_first": Variant({"fault": "close_mid", "fault_after": 0}, "error"),
    "close_mid": Variant({"fault": "close_mid", "fault_after": 2}, "error"),
    # A line that is not JSON. In SSE, a line that is no field Córtex knows is skipped, as
    # the SSE standard says, so the OpenAI and Messages upstreams' answers stay whole.
    "garbage_first": Variant(
        {"fault": "garbage_line", "fault_after": 0},
        SSE_SKIPS_GARBAGE,
        known_bugs=WHOLE_PASSTHROUGH_BUGS,
    ),
    "garbage_line": Variant(
        {"fault": "garbage_line", "fault_after": 2},
        SSE_SKIPS_GARBAGE,
        known_bugs=WHOLE_PASSTHROUGH_BUGS,
    ),
    "garbage_data_event": Variant(
        {"fault": "garbage_line", "fault_after": 2, "garbage": b"data: <html>oops\n\n"},
        "error",
        known_bugs=WHOLE_PASSTHROUGH_BUGS,
    ),
    "error_line_after_0": Variant({"error_line_after": 0}, "error"),
    "error_line_after_2": Variant({"error_line_after": 2}, "error"),
    "status_500_json": Variant({"fault": "status", "status": 500}, "error"),
    "status_404_json": Variant(
        {"fault": "status", "status": 404, "error_body": b'{"error":"model not found"}'}, "error"
    ),
    "status_503_no_body": Variant(
        {"fault": "status", "status": 503, "error_body": b"", "error_content_type": "text/plain"},
        "error",
    ),
    "status_502_html": Variant(
        {"fault": "status", "status": 502, "error_body": HTML, "error_content_type": "text/html"},
        "error",
    ),
    "status_429_json_as_text": Variant(
        {
            "fault": "status",
            "status": 429,
            "error_body": b'{"error":"too many requests"}',
            "error_content_type": "text/plain",
        },
        "error",
    ),
    "status_200_html": Variant(
        {"fault": "status", "status": 200, "error_body": HTML, "error_content_type": "text/html"},
        "error",
        known_bugs=WHOLE_PASSTHROUGH_BUGS,
    ),
}


# ---- the rig: one fake upstream, a gateway per upstream dialect -------------------------------


@dataclass
class Result:
    reply: Reply | None = None
    verdict: Verdict | None = None
    failure: str | None = None
    records: list[RecordedRequest] = field(default_factory=list)


@dataclass
class Rig:
    fake: FakeOllama
    gateways: dict[str, RunningGateway] = field(default_factory=dict)
    # the same, with long timeouts: only a client leaving can end an upstream request early
    patient: dict[str, RunningGateway] = field(default_factory=dict)
    # the same as `gateways`, with a heartbeat soon after the request: headers go out first
    beating: dict[str, RunningGateway] = field(default_factory=dict)
    baseline: Usage | None = None
    requests_checked: int = 0
    _names: Iterator[int] = field(default_factory=lambda: count(1))
    # the upstream requests by model, read from the fake's record as it grows (not re-read
    # whole at every poll: thousands of records, polled by a few threads at once)
    _by_model: dict[str, list[RecordedRequest]] = field(default_factory=dict)
    _seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (f"127.0.0.1:{self.fake.port}", f":{self.fake.port}")

    def sets(self) -> dict[Via, dict[str, RunningGateway]]:
        return {"quick": self.gateways, "patient": self.patient, "beating": self.beating}

    def all_gateways(self) -> list[tuple[str, RunningGateway]]:
        return [
            (kind if via == "quick" else f"{kind} ({via})", g)
            for via, gateways in self.sets().items()
            for kind, g in gateways.items()
        ]

    def model(self, script: Script) -> str:
        """A fresh model name (all of one width) whose requests get ``script``."""
        name = f"m{next(self._names):05d}"
        self.fake.models.append(name)
        self.fake.scripts[name] = script
        return name

    def send(self, kind: str, framing: ClientFraming, model: str, via: Via = "quick") -> Reply:
        gateway = self.sets()[via][kind]
        return exchange(gateway.host, gateway.port, framing, framing.payload(model))

    def records(self, model: str) -> list[RecordedRequest]:
        """The upstream requests for ``model`` so far."""
        with self._lock:
            new = self.fake.requests[self._seen :]
            self._seen += len(new)
            for rec in new:
                if rec.method == "POST":
                    name = orjson.loads(rec.body).get("model")
                    self._by_model.setdefault(name, []).append(rec)
            return list(self._by_model.get(model, ()))


def gateway_tasks(gateway: RunningGateway) -> int:
    loop = gateway.server.servers[0].get_loop()

    async def count_tasks() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count_tasks(), loop).result(5)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tcp_sockets() -> list[tuple[int, int]]:
    """This process's TCP sockets as (local port, remote port); 0 for a listener's remote."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in list(f)[1:]:
                cols = row.split()
                if cols[9] in inodes:
                    local, remote = (int(c.rsplit(":", 1)[1], 16) for c in cols[1:3])
                    found.append((local, remote))
    return found


@dataclass(frozen=True)
class Usage:
    """What the process holds, told apart: pooled upstream connections are allowed to stay."""

    fds: int  # every open descriptor but the two ends of the gateways' upstream connections
    pooled: int  # gateways' kept-alive connections to the fake upstream
    clients: int  # connections between clients and the gateways (both ends)
    tasks: dict[str, int]


def usage(rig: Rig) -> Usage:
    fake = rig.fake.port
    ports = {g.port for _, g in rig.all_gateways()}
    sockets = tcp_sockets()
    pooled = sum(1 for _, remote in sockets if remote == fake)
    clients = sum(1 for local, remote in sockets if remote and (local in ports or remote in ports))
    return Usage(
        open_fds() - 2 * pooled,
        pooled,
        clients,
        {kind: gateway_tasks(g) for kind, g in rig.all_gateways()},
    )


@pytest.fixture(scope="module")
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    with FakeOllama(script=Script(**FIXED)) as fake:
        rig = Rig(fake)
        try:
            for kind in KINDS:
                for via, gateways in rig.sets().items():
                    timeout = 60.0 if via == "patient" else None
                    settings = Settings(
                        upstream=PREFIXES[kind] + fake.url,
                        host="127.0.0.1",
                        port=0,
                        first_byte_timeout=timeout or FIRST_BYTE,
                        idle_timeout=timeout or IDLE,
                        heartbeat_interval=HEARTBEAT if via == "beating" else 15.0,
                        connect_timeout=2,
                        client_socket_buffer=4096,
                        upstream_socket_buffer=4096,
                        # the cases fail on purpose, hundreds in a row: keep the circuit closed
                        circuit_failures=1_000_000,
                    )
                    gateways[kind] = RunningGateway(settings).__enter__()
            warm = rig.model(Script(**FIXED))
            runs = [(*pair, via) for pair in matrix_pairs() for via in rig.sets()]
            for _ in range(2):  # imports, lazy state, and a few pooled upstream connections
                with ThreadPoolExecutor(WORKERS) as pool:
                    list(pool.map(lambda k_f_v: rig.send(k_f_v[0], k_f_v[1], warm, k_f_v[2]), runs))
            time.sleep(0.2)
            rig.baseline = usage(rig)
            yield rig
        finally:
            for _, gateway in rig.all_gateways():
                gateway.__exit__()
    report(request, f"{rig.requests_checked} requests through Córtex checked against the invariant")


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's capture (the case count shows with -q too)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\nfault matrix: {line}")


def matrix_pairs() -> list[tuple[str, ClientFraming]]:
    return [(kind, framing) for kind in KINDS for framing in FRAMINGS]


def passthrough(kind: str, framing: ClientFraming) -> bool:
    """Whether Córtex forwards the upstream's bytes untouched for this pair."""
    return framing.dialect == kind and not framing.sse


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---- running cases at once -------------------------------------------------------------------


@dataclass
class Case:
    kind: str
    framing: ClientFraming
    script: Script
    expect: Expect
    upstream_closed: bool = False
    reference: bytes | None = None  # the fault-free body (passthrough pairs), for byte equality
    model: str = ""
    # "patient": through the gateways with long timeouts (a busy machine is no fault);
    # "beating": through those with an early heartbeat
    via: Via = "quick"

    @property
    def sleeps(self) -> bool:
        return self.upstream_closed or self.script.header_delay > 0


def run_cases(rig: Rig, cases: list[Case]) -> list[Result]:
    for case in cases:
        case.model = rig.model(case.script)
    # a case that waits out a timeout or a late upstream mostly sleeps: those run all at
    # once, beside the others
    waiting = [case for case in cases if case.sleeps]
    with (
        ThreadPoolExecutor(max(1, len(waiting))) as sleepers,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        futures = [
            (sleepers if case.sleeps else pool).submit(run_case, rig, case) for case in cases
        ]
        results = [future.result() for future in futures]
    rig.requests_checked += len(cases)
    for case, result in zip(cases, results, strict=True):
        result.records = rig.records(case.model)
        if result.failure is None and not result.records:
            result.failure = "the request never reached the upstream"
        if result.failure is None and case.upstream_closed:
            for rec in result.records:
                if not wait_for(lambda rec=rec: rec.disconnected_at is not None):
                    result.failure = "Córtex gave up but left the upstream request open"
    return results


def run_case(rig: Rig, case: Case) -> Result:
    result = Result()
    try:
        result.reply = rig.send(case.kind, case.framing, case.model, case.via)
        result.verdict = judge(case.framing, result.reply, ANSWER, secrets=rig.secrets)
    except Violation as exc:
        raw = result.reply.raw[:3000] if result.reply else b""
        result.failure = f"{exc}\n--- raw reply ---\n{raw!r}"
        return result
    verdict = result.verdict
    if verdict.outcome != case.expect:
        result.failure = (
            f"expected {case.expect}, got {verdict.outcome} (status {verdict.status}): "
            f"{verdict.error or verdict.text!r}"
        )
    elif verdict.outcome == "complete" and case.reference is not None:
        expected = case.reference.replace(b"m00000", case.model.encode())
        if result.reply.body != expected:
            result.failure = f"the relayed bytes changed:\n{result.reply.body!r}\n{expected!r}"
    return result


@pytest.fixture(scope="module")
def references(rig: Rig) -> dict[tuple[str, str], bytes]:
    """Fault-free bodies of the passthrough pairs, for model ``m00000`` (fixed ids and times)."""
    rig.fake.models.append("m00000")
    rig.fake.scripts["m00000"] = Script(**FIXED)
    return {
        (kind, framing.name): rig.send(kind, framing, "m00000").body
        for kind, framing in matrix_pairs()
        if passthrough(kind, framing)
    }


@pytest.fixture(scope="module")
def matrix_results(rig: Rig, references: dict[tuple[str, str], bytes]) -> dict[str, Result]:
    keys, cases = [], []
    for name, variant in VARIANTS.items():
        for kind, framing in matrix_pairs():
            expect = variant.expected(kind, framing.name)
            keys.append(case_id(name, kind, framing))
            cases.append(
                Case(
                    kind,
                    framing,
                    Script(**{**FIXED, **variant.script}),
                    expect,
                    variant.upstream_closed,
                    references.get((kind, framing.name)) if expect == "complete" else None,
                )
            )
    return dict(zip(keys, run_cases(rig, cases), strict=True))


def case_id(variant: str, kind: str, framing: ClientFraming) -> str:
    return f"{variant}-{kind}-{framing.name}"


def matrix_params() -> Iterator[Any]:
    for name, variant in VARIANTS.items():
        for kind, framing in matrix_pairs():
            reason = variant.known_bugs.get(f"{kind}/{framing.name}")
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(
                case_id(name, kind, framing), id=case_id(name, kind, framing), marks=marks
            )


@pytest.mark.parametrize("case", list(matrix_params()))
def test_fault_matrix(case: str, matrix_results: dict[str, Result]) -> None:
    result = matrix_results[case]
    assert result.failure is None, result.failure


# ---- a failure after the heartbeat began ------------------------------------------------------

LATE = 3 * HEARTBEAT  # an upstream this late is preceded by heartbeats, and the headers
BEATING_VARIANTS: dict[str, Variant] = {
    "late_answer": Variant({"header_delay": LATE}, "complete"),
    "late_status_500": Variant({"header_delay": LATE, "fault": "status", "status": 500}, "error"),
    "late_reset": Variant({"header_delay": LATE, "fault": "reset_mid", "fault_after": 0}, "error"),
    "late_stall": Variant(
        {"header_delay": LATE, "fault": "stall_before_first"}, "error", upstream_closed=True
    ),
    "never_answers": Variant({"header_delay": 30.0}, "error", upstream_closed=True),
}


def beating_params() -> Iterator[Any]:
    for name in BEATING_VARIANTS:
        for kind in KINDS:
            for framing in STREAMING:
                yield pytest.param(name, kind, framing, id=f"{name}-{kind}-{framing.name}")


BEATING = list(beating_params())


@pytest.fixture(scope="module")
def beating_results(rig: Rig) -> dict[tuple[str, str, str], Result]:
    cases = []
    for param in BEATING:
        name, kind, framing = param.values
        variant = BEATING_VARIANTS[name]
        script = Script(**{**FIXED, **variant.script})
        cases.append(Case(kind, framing, script, variant.expected(kind), variant.upstream_closed))
        cases[-1].via = "beating"
    results = run_cases(rig, cases)
    return {
        (name, kind, framing.name): result
        for (name, kind, framing), result in zip((p.values for p in BEATING), results, strict=True)
    }


@pytest.mark.parametrize(("variant", "kind", "framing"), BEATING)
def test_a_stream_whose_headers_went_out_with_a_heartbeat_still_ends_explicitly(
    variant: str,
    kind: str,
    framing: ClientFraming,
    beating_results: dict[tuple[str, str, str], Result],
) -> None:
    """A heartbeat sends the headers before the upstream answered: from then on a failure
    can only be the framing's in-band error, well formed although no part was written."""
    result = beating_results[(variant, kind, framing.name)]
    assert result.failure is None, result.failure
    assert result.reply is not None and result.verdict is not None
    if framing.sse or framing.dialect != "ollama":  # every streamed framing but NDJSON beats
        assert result.reply.status == 200, "no heartbeat went out before the upstream answered"
        assert result.verdict.outcome == "complete" or result.verdict.in_band


# ---- every byte boundary of one line ---------------------------------------------------------


def recorded_line(rig: Rig, kind: str) -> bytes:
    """The upstream's first content line as the fake writes it (the longer, with usage); for
    Messages, the first unit: the text block's start, the ping and the first delta."""
    framing = next(f for f in STREAMING if f.dialect == kind and not f.sse)
    payload = framing.payload("m00000")
    if kind == "openai":
        payload["stream_options"] = {"include_usage": True}
    body = exchange("127.0.0.1", rig.fake.port, framing, payload).body
    separator = b"\n" if kind == "ollama" else b"\n\n"
    chunks = body.split(separator)
    at = next(i for i, chunk in enumerate(chunks) if TOKENS[0].encode() in chunk)
    first = at
    if kind == "anthropic":  # back to the block's start
        first = next(i for i in range(at, -1, -1) if b"content_block_start" in chunks[i])
    return separator.join(chunks[first : at + 1]) + separator


def sweep_pairs() -> list[tuple[str, ClientFraming]]:
    """What reads an upstream's cut bytes: its reader behind any translated pair, each of its
    same-dialect pairs (relayed as it came). Every pair of the first two client dialects, and
    of the others only the same-dialect ones: a Messages or Responses client translated from
    an upstream reads it with the same reader as an Ollama or OpenAI client, and the writers
    give the same bytes whatever the chunking (``test_properties.py``)."""
    return [
        (kind, framing)
        for kind, framing in matrix_pairs()
        if framing.dialect in ("ollama", "openai") or passthrough(kind, framing)
    ]


SWEEP_PAIRS = sweep_pairs()


@pytest.fixture(scope="module")
def sweep_results(
    rig: Rig, references: dict[tuple[str, str], bytes]
) -> dict[tuple[str, str], tuple[bytes, list[Result]]]:
    """Per pair: the line, and one result per cut (at byte 1, 2, ... of every line)."""
    cases: list[Case] = []
    lines = {kind: recorded_line(rig, kind) for kind in KINDS}
    for kind, framing in SWEEP_PAIRS:
        for offset in range(1, len(lines[kind])):
            script = Script(**FIXED, fault="split_lines", split_at=(offset,), split_pause=0.001)
            reference = references.get((kind, framing.name))
            cases.append(
                Case(kind, framing, script, "complete", reference=reference, via="patient")
            )
    results = iter(run_cases(rig, cases))
    return {
        (kind, framing.name): (
            lines[kind],
            [next(results) for _ in range(1, len(lines[kind]))],
        )
        for kind, framing in SWEEP_PAIRS
    }


@pytest.mark.parametrize(
    ("kind", "framing"), SWEEP_PAIRS, ids=[f"{k}-{f.name}" for k, f in SWEEP_PAIRS]
)
def test_a_line_cut_at_every_byte_boundary(
    kind: str,
    framing: ClientFraming,
    sweep_results: dict[tuple[str, str], tuple[bytes, list[Result]]],
) -> None:
    line, results = sweep_results[(kind, framing.name)]
    failures = [
        f"cut at byte {offset}: {result.failure}"
        for offset, result in enumerate(results, start=1)
        if result.failure is not None
    ]
    assert not failures, f"{len(failures)} of {len(results)} cuts of {line!r}:\n" + "\n".join(
        failures[:5]
    )


# ---- a client that reads slowly --------------------------------------------------------------

SLOW_TOKENS = tuple(f" palabra{i} ñ🦄" for i in range(600))


def read_slowly(sock: socket.socket, pause_first: float) -> bytes:
    """Wait (the idle timeout is shorter), then take the answer a few bytes at a time."""
    time.sleep(pause_first)
    sock.settimeout(15)
    data = bytearray()
    reads = 0
    while chunk := sock.recv(5):
        data += chunk
        reads += 1
        if reads % 50 == 0:
            time.sleep(0.0005)
    return bytes(data)


def slow_client(rig: Rig, kind: str, framing: ClientFraming, model: str) -> Reply:
    gateway = rig.gateways[kind]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect((gateway.host, gateway.port))
        sock.sendall(request_bytes(framing, framing.payload(model)))
        return parse_response(read_slowly(sock, pause_first=2 * IDLE))


@pytest.fixture(scope="module")
def slow_results(rig: Rig) -> dict[tuple[str, str], tuple[Reply, Reply]]:
    """Per streaming pair: what a slow client got, and what a fast one got."""
    model = rig.model(Script(tokens=SLOW_TOKENS, created_at=FIXED["created_at"], completion_id="s"))
    pairs = [(kind, framing) for kind in KINDS for framing in STREAMING]
    with ThreadPoolExecutor(len(pairs)) as pool:
        slow = list(pool.map(lambda p: slow_client(rig, *p, model), pairs))
    fast = [rig.send(kind, framing, model) for kind, framing in pairs]
    rig.requests_checked += 2 * len(pairs)
    return {
        (kind, framing.name): (s, f)
        for (kind, framing), s, f in zip(pairs, slow, fast, strict=True)
    }


@pytest.mark.parametrize("framing", STREAMING, ids=lambda f: f.name)
@pytest.mark.parametrize("kind", KINDS)
def test_a_client_reading_a_few_bytes_at_a_time_gets_every_byte(
    kind: str,
    framing: ClientFraming,
    slow_results: dict[tuple[str, str], tuple[Reply, Reply]],
    rig: Rig,
) -> None:
    slow, fast = slow_results[(kind, framing.name)]
    verdict = judge(framing, slow, "".join(SLOW_TOKENS), secrets=rig.secrets)
    assert verdict.outcome == "complete", verdict.error
    if passthrough(kind, framing):
        assert slow.body == fast.body


# ---- a client that leaves --------------------------------------------------------------------

STAGE_SCRIPTS: dict[str, dict[str, Any]] = {
    "before_headers_upstream_silent": {"header_delay": 3600.0},
    "before_headers_upstream_headers_only": {"fault": "stall_before_first"},
    "after_first_chunk": {"count": 100_000, "delay": 0.005},
    "mid_stream": {"count": 100_000, "delay": 0.002},
    "mid_stream_reset": {"count": 100_000, "delay": 0.002},
    "whole_wait": {"count": 100_000, "delay": 0.005},
}


def stage_params() -> Iterator[Any]:
    for stage in STAGE_SCRIPTS:
        for kind, framing in matrix_pairs():
            if stage.startswith("before_headers") or (framing.stream != (stage == "whole_wait")):
                yield pytest.param(stage, kind, framing, id=f"{stage}-{kind}-{framing.name}")


STAGES = list(stage_params())


def leave(rig: Rig, stage: str, kind: str, framing: ClientFraming) -> str | None:
    """Leave at ``stage``; None if the upstream request then closed within a second."""
    model = rig.model(Script(**STAGE_SCRIPTS[stage]))
    gateway = rig.patient[kind]
    with socket.create_connection((gateway.host, gateway.port), timeout=10) as sock:
        sock.sendall(request_bytes(framing, framing.payload(model)))
        if not wait_for(lambda: bool(rig.records(model)), timeout=5):
            return "the request never reached the upstream"
        if stage.startswith(("after", "mid")):
            marker = b"tok0" if stage.startswith("after") else b"tok30"
            data = b""
            while marker not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return f"the stream ended before {marker!r}: {data[-300:]!r}"
                data += chunk
        else:
            time.sleep(0.2)
        if stage.endswith("reset"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    left = time.monotonic()
    rec = rig.records(model)[-1]
    if not wait_for(lambda: rec.disconnected_at is not None, timeout=5):
        return "the upstream request is still open 5 s after the client left"
    assert rec.disconnected_at is not None
    if rec.disconnected_at - left > 1.0:
        return (
            f"the upstream request closed {rec.disconnected_at - left:.2f} s after the client left"
        )
    return None


@pytest.fixture(scope="module")
def leave_results(rig: Rig) -> dict[tuple[str, str, str], str | None]:
    cases = [param.values for param in STAGES]
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda case: leave(rig, *case), cases))
    rig.requests_checked += len(cases)
    return {
        (stage, kind, framing.name): r
        for (stage, kind, framing), r in zip(cases, results, strict=True)
    }


@pytest.mark.parametrize(("stage", "kind", "framing"), STAGES)
def test_a_client_that_leaves_closes_the_upstream_request(
    stage: str,
    kind: str,
    framing: ClientFraming,
    leave_results: dict[tuple[str, str, str], str | None],
) -> None:
    failure = leave_results[(stage, kind, framing.name)]
    assert failure is None, failure


# ---- and nothing leaked ----------------------------------------------------------------------


def test_after_everything_descriptors_and_tasks_are_back_to_baseline(
    rig: Rig,
    matrix_results: dict[str, Result],
    sweep_results: dict[tuple[str, str], tuple[bytes, list[Result]]],
    slow_results: dict[tuple[str, str], tuple[Reply, Reply]],
    leave_results: dict[tuple[str, str, str], str | None],
    beating_results: dict[tuple[str, str, str], Result],
) -> None:
    """Runs last (it needs every other part's results). This process hosts the gateways, the
    fake and the clients: its descriptors, less the gateways' pooled upstream connections
    (at most one per concurrent request), and each gateway loop's tasks must be back to
    what they were after the warm-up, and no client connection may be left open."""
    baseline = rig.baseline
    assert baseline is not None
    pool_bound = WORKERS * len(rig.all_gateways())

    def settled() -> bool:
        now = usage(rig)
        return (
            now.fds <= baseline.fds
            and now.clients == 0
            and now.pooled <= pool_bound
            and all(now.tasks[k] <= baseline.tasks[k] for k in now.tasks)
        )

    settled_in_time = wait_for(settled, timeout=5)
    assert settled_in_time, (
        f"after {rig.requests_checked} requests: {usage(rig)}, baseline {baseline}, "
        f"pooled connections allowed {pool_bound}"
    )
