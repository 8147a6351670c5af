"""Hostile requests: too big, too deep, not UTF-8, headers that never end, bodies that trickle.

Each must end in a 4xx in the dialect's error shape (Ollama's ``{"error": str}`` on
``/api/*``, OpenAI's ``{"error": {"message", ...}}`` on ``/v1/*``), never a 500 or a
traceback, and must not reach the upstream. What uvicorn does not bound (a request head's
size, a client that sends its request slowly) is marked as a known gap.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RunningGateway, gateway_per_dialect
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import open_raw_stream, read_until
from tests.invariant import ClientFraming, Reply, error_message, judge, parse_response

LIMIT = 64 * 1024
HELLO: dict[str, Any] = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}
BODIES: dict[str, dict[str, Any]] = {
    "/api/chat": HELLO,
    "/api/generate": {"model": DEFAULT_MODEL, "prompt": "hola"},
    "/api/embed": {"model": DEFAULT_MODEL, "input": "hola"},
    "/api/embeddings": {"model": DEFAULT_MODEL, "prompt": "hola"},
    "/api/show": {"model": DEFAULT_MODEL},
    "/v1/chat/completions": HELLO,
    "/v1/embeddings": {"model": DEFAULT_MODEL, "input": "hola"},
}
KINDS = ("ollama", "openai")


class Hostile:
    def __init__(self, fake: FakeOllama) -> None:
        self.fake = fake
        self.gateways: dict[str, RunningGateway] = {}

    def send(self, kind: str, raw: bytes, timeout: float = 10) -> Reply:
        """Write ``raw`` while reading the answer, as a client must when the server may
        answer (413) before the body is all sent."""
        gateway = self.gateways[kind]
        with socket.create_connection((gateway.host, gateway.port), timeout=timeout) as sock:
            writer = threading.Thread(target=_send_quietly, args=(sock, raw))
            writer.start()
            data = bytearray()
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            finally:
                writer.join()
        return parse_response(bytes(data))

    def post(
        self, kind: str, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> Reply:
        head = [f"POST {path} HTTP/1.1", "Host: localhost", "Connection: close"]
        head += [
            f"{k}: {v}" for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items()
        ]
        return self.send(kind, ("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def send_quickly(self, kind: str, path: str, body: bytes) -> Reply:
        """``post``, with a timeout far below the gateway's: a hang is a failure, not a wait."""
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        return self.send(kind, head.encode() + body, timeout=3)

    def upstream_posts(self) -> int:
        return sum(1 for r in self.fake.requests if r.method == "POST")


@pytest.fixture(scope="module")
def hostile() -> Iterator[Hostile]:
    with FakeOllama() as fake:
        rig = Hostile(fake)
        with gateway_per_dialect(
            fake,
            max_body_bytes=LIMIT,
            max_line_bytes=LIMIT,
            max_response_bytes=4 * LIMIT,
            head_timeout=1.5,
            body_timeout=1.5,
        ) as rig.gateways:
            yield rig


def _send_quietly(sock: socket.socket, raw: bytes) -> None:
    with contextlib.suppress(OSError):  # the server answered and closed first
        sock.sendall(raw)


def rejected(reply: Reply, path: str, status: int) -> str:
    """The error message of a rejection in the path's dialect, with the expected status."""
    assert reply.complete
    assert reply.status == status, reply.raw[:500]
    assert reply.content_type.startswith("application/json")
    message = error_message(
        "openai" if path.startswith("/v1/") else "ollama", json.loads(reply.body)
    )
    assert "Traceback" not in message and "internal error" not in message
    return message


def deep(levels: int) -> Any:
    value: Any = {}
    for _ in range(levels):
        value = {"a": value}
    return value


# ---- too big ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("path", list(BODIES))
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_over_the_limit_is_a_413(
    hostile: Hostile, kind: str, path: str, framing: str
) -> None:
    body = json.dumps({**BODIES[path], "padding": "x" * LIMIT}).encode()
    before = hostile.upstream_posts()
    if framing == "content-length":
        # As curl does for a big body: the head first, the body only after "100 Continue".
        # (Sent at once, the 413 can be lost: the server closes with the body unread and
        # the kernel answers the rest with a reset.)
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        head += f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        reply = hostile.send(kind, head.encode())
    else:
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n"
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 4096]), body[i : i + 4096])
            for i in range(0, len(body), 4096)
        )
        reply = hostile.send(kind, head.encode() + chunks + b"0\r\n\r\n")
    assert "larger than" in rejected(reply, path, 413)
    assert hostile.upstream_posts() == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_huge_declared_length_is_refused_before_any_body_arrives(
    hostile: Hostile, kind: str
) -> None:
    head = "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    head += "Content-Length: 1000000000000\r\n\r\n"
    started = time.monotonic()
    reply = hostile.send(kind, head.encode(), timeout=5)
    assert time.monotonic() - started < 2
    rejected(reply, "/api/chat", 413)


# ---- too deep --------------------------------------------------------------------------------

DEEP_BODIES = {
    "/api/chat tools": ("/api/chat", {**HELLO, "tools": [deep(300)]}),
    "/api/chat format": ("/api/chat", {**HELLO, "format": deep(300)}),
    "/api/chat options, no model": (
        "/api/chat",
        {"messages": HELLO["messages"], "options": deep(300)},
    ),
    "/api/chat tool call arguments": (
        "/api/chat",
        {
            **HELLO,
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": deep(300)}}],
                }
            ],
        },
    ),
    "/api/generate format": (
        "/api/generate",
        {"model": DEFAULT_MODEL, "prompt": "hola", "format": deep(300)},
    ),
    "/v1/chat/completions tools": ("/v1/chat/completions", {**HELLO, "tools": [deep(300)]}),
    "/v1/chat/completions response_format": (
        "/v1/chat/completions",
        {**HELLO, "response_format": {"type": "json_schema", "json_schema": {"schema": deep(300)}}},
    ),
    "/v1/chat/completions message field": (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x", "extra": deep(300)}]},
    ),
    "/v1/embeddings input": ("/v1/embeddings", {"model": DEFAULT_MODEL, "input": deep(300)}),
}


@pytest.mark.parametrize("case", list(DEEP_BODIES))
@pytest.mark.parametrize("kind", KINDS)
def test_json_nested_deeper_than_the_gateway_can_reencode_is_a_400(
    hostile: Hostile, kind: str, case: str
) -> None:
    path, payload = DEEP_BODIES[case]
    rejected(hostile.post(kind, path, json.dumps(payload).encode()), path, 400)


@pytest.mark.parametrize("kind", KINDS)
def test_deep_tool_call_arguments_inside_a_string_are_a_400(hostile: Hostile, kind: str) -> None:
    """OpenAI's arguments are JSON text: the nesting shows only once Córtex parses it."""
    arguments = json.dumps(deep(300))
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    payload = {**HELLO, "messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]}
    reply = hostile.post(kind, "/v1/chat/completions", json.dumps(payload).encode())
    if kind == "openai":  # relayed untouched: the upstream judges it
        assert reply.status == 200
    else:
        assert "nested" in rejected(reply, "/v1/chat/completions", 400)


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_json_past_the_parsers_depth_limit_is_a_400(hostile: Hostile, path: str) -> None:
    rejected(hostile.post("ollama", path, b"[" * 5000), path, 400)


# ---- not UTF-8 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/embed", "/v1/chat/completions", "/v1/embeddings"]
)
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_that_is_not_utf8_is_a_400(hostile: Hostile, kind: str, path: str) -> None:
    body = json.dumps(BODIES[path]).encode().replace(b"hola", b"h\xffol\xc3a")
    assert "UTF-8" in rejected(hostile.post(kind, path, body), path, 400)


def test_a_request_id_that_is_not_safe_is_replaced_and_never_passed_on(hostile: Hostile) -> None:
    raw = json.dumps(HELLO).encode()
    for given in (b"abc\xff\xfe", b"a" * 500, b"<script>alert(1)</script>", b"id with spaces"):
        head = (
            b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Length: %d\r\nX-Request-ID: %s\r\n\r\n" % (len(raw), given)
        )
        reply = hostile.send("ollama", head + raw)
        assert reply.status == 200
        echoed = reply.headers["x-request-id"]
        assert str(uuid.UUID(echoed)) == echoed
        assert hostile.fake.requests[-1].headers["x-request-id"] == echoed


def test_client_headers_other_than_the_request_id_are_not_passed_upstream(hostile: Hostile) -> None:
    secret = {
        "Authorization": "Bearer client-secret",
        "Cookie": "session=client-secret",
        "X-Forwarded-For": "10.0.0.1",
        "X-Api-Key": "client-secret",
    }
    for kind, path in (
        ("ollama", "/api/chat"),
        ("openai", "/v1/chat/completions"),
        ("openai", "/api/chat"),
    ):
        reply = hostile.post(kind, path, json.dumps(HELLO).encode(), secret)
        assert reply.status == 200
        sent = hostile.fake.requests[-1].headers
        assert "cookie" not in sent and "x-forwarded-for" not in sent and "x-api-key" not in sent
        assert "client-secret" not in sent.get("authorization", "")


@pytest.mark.parametrize("path", ["/api/%ff%fe", "/v1/models/%ff%fe", "/api/chat%00"])
def test_paths_that_are_not_utf8_get_an_answer_in_the_dialects_shape(
    hostile: Hostile, path: str
) -> None:
    reply = hostile.send(
        "ollama", f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    assert 400 <= reply.status < 500
    error_message("openai" if path.startswith("/v1/") else "ollama", json.loads(reply.body))


# ---- heads and bodies that never end ---------------------------------------------------------


def test_a_request_head_over_one_mebibyte_is_refused(hostile: Hostile) -> None:
    head = (
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Big: "
        + b"a" * (1 << 20)
        + b"\r\n\r\n"
    )
    try:
        reply = hostile.send("ollama", head)
    except (ConnectionError, ValueError, AssertionError):
        return  # closed on us: refused
    assert reply.status in (400, 413, 431), reply.status


def test_a_request_that_stops_half_way_is_dropped(hostile: Hostile) -> None:
    gateway = hostile.gateways["ollama"]
    starts = [
        b"",  # connected, then silence
        b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Ty",  # half a head
        # half a body
        b'POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{"messa',
    ]
    socks = []
    for start in starts:
        sock = socket.create_connection((gateway.host, gateway.port))
        sock.sendall(start)
        socks.append(sock)
    deadline = time.monotonic() + 4  # head_timeout and body_timeout are 1.5 s here
    try:
        for sock in socks:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                pytest.fail("a connection was still open after 4 s of silence")
            assert data == b"" or data.startswith(b"HTTP/1.1 4")
    finally:
        for sock in socks:
            sock.close()


# ---- well-formed JSON, misshapen fields ------------------------------------------------------


def assistant_calls(calls: Any) -> dict[str, Any]:
    return {**HELLO, "messages": [{"role": "assistant", "content": "", "tool_calls": calls}]}


def user_parts(parts: Any) -> dict[str, Any]:
    return {**HELLO, "messages": [{"role": "user", "content": parts}]}


MISSHAPEN = {
    "tool call without function": ("/api/chat", assistant_calls([{}])),
    "tool call function not an object": ("/api/chat", assistant_calls([{"function": 5}])),
    "tool call without a name": ("/api/chat", assistant_calls([{"function": {"arguments": {}}}])),
    "tool call arguments a list": (
        "/api/chat",
        assistant_calls([{"function": {"name": "f", "arguments": [1, 2]}}]),
    ),
    "openai tool call function a string": (
        "/v1/chat/completions",
        assistant_calls([{"id": "c1", "type": "function", "function": "f"}]),
    ),
    "openai tool call arguments not an object": (
        "/v1/chat/completions",
        assistant_calls(
            [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]
        ),
    ),
    "openai text part not a string": (
        "/v1/chat/completions",
        user_parts([{"type": "text", "text": 5}]),
    ),
    "openai image_url a string": (
        "/v1/chat/completions",
        user_parts([{"type": "image_url", "image_url": "data:image/png;base64,AAAA"}]),
    ),
}


@pytest.mark.parametrize("case", list(MISSHAPEN))
def test_misshapen_fields_that_need_translating_are_a_400(hostile: Hostile, case: str) -> None:
    """Through translation (Ollama client → OpenAI upstream and back): a 400, not a 500.
    Relayed untouched to an upstream of the same dialect, the upstream judges them."""
    path, payload = MISSHAPEN[case]
    kind = "openai" if path.startswith("/api/") else "ollama"
    rejected(hostile.post(kind, path, json.dumps(payload).encode()), path, 400)
    same = hostile.post(
        "ollama" if kind == "openai" else "openai", path, json.dumps(payload).encode()
    )
    assert same.status < 500


# ---- no CORS unless configured ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/tags"), ("POST", "/api/chat"), ("OPTIONS", "/v1/chat/completions")],
)
def test_no_cross_origin_access_is_granted(hostile: Hostile, method: str, path: str) -> None:
    """A page on another origin cannot read Córtex's answers: no CORS headers, and a
    preflight is not approved."""
    body = json.dumps(HELLO).encode() if method == "POST" else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    reply = hostile.send("ollama", head.encode() + body)
    assert not [h for h in reply.headers if h.startswith("access-control-")], reply.headers
    if method == "OPTIONS":
        assert reply.status >= 400


# ---- a hostile upstream: lines and answers without end ---------------------------------------


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_line_or_answer_over_the_bound_is_an_explicit_error(
    hostile: Hostile, kind: str, stream: bool
) -> None:
    """One token of 8× the line bound: a streamed answer ends with an error, a whole one is a
    502; neither is buffered without limit."""
    hostile.fake.script = Script(tokens=("x" * (8 * LIMIT),))
    path = "/api/chat" if kind == "ollama" else "/v1/chat/completions"
    payload = {**HELLO, "stream": stream}
    reply = hostile.post(kind, path, json.dumps(payload).encode())
    framing = ClientFraming("bound", "ollama" if kind == "ollama" else "openai", stream=stream)
    verdict = judge(framing, reply, None)
    assert verdict.outcome == "error"
    assert "longer than" in verdict.error or "exceeded" in verdict.error, verdict.error


@pytest.mark.parametrize("kind", KINDS)
def test_after_an_answer_over_the_bound_the_pooled_connection_still_carries_answers(
    hostile: Hostile, kind: str
) -> None:
    """The over-long answer arrives whole, so its connection goes back to the pool while
    the rest of it still waits to be handed on; the next answer on that connection must
    be read (it once hung there until the client gave up)."""
    path = "/api/chat" if kind == "ollama" else "/v1/chat/completions"
    for _ in range(12):
        hostile.fake.script = Script(tokens=("x" * (8 * LIMIT),))
        failed = hostile.post(kind, path, json.dumps({**HELLO, "stream": True}).encode())
        framing = ClientFraming("bound", "ollama" if kind == "ollama" else "openai", stream=True)
        assert judge(framing, failed, None).outcome == "error"
        hostile.fake.script = Script(tokens=("hola",))
        reply = hostile.send_quickly(kind, path, json.dumps({**HELLO, "stream": False}).encode())
        assert reply.status == 200, reply.raw[:300]
        assert b"hola" in reply.body


def test_max_connections_streams_run_and_the_next_connection_gets_a_503(
    fake: FakeOllama, start_gateway: Any
) -> None:
    fake.script = Script(count=40, delay=0.05)
    gw = start_gateway(max_connections=3)
    streams = [open_raw_stream(gw.host, gw.port, HELLO) for _ in range(3)]  # all at once
    try:
        for sock in streams:
            assert b"200 OK" in read_until(sock, b"tok0")
        extra = open_raw_stream(gw.host, gw.port, HELLO)
        with contextlib.closing(extra):
            assert read_until(extra, b"\r\n\r\n").startswith(b"HTTP/1.1 503")
        for sock in streams:
            assert b'"done":true' in read_until(sock, b'"done":true')
    finally:
        for sock in streams:
            sock.close()
