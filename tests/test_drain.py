"""SIGTERM: stop accepting, let answers finish, end the stragglers explicitly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import orjson

from tests.conftest import RunningGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import open_raw_stream, read_until
from tests.test_seed_and_cli import free_port, wait_listening

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}


def serve(fake: FakeOllama, drain: float) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cortex", "serve", "--port", str(port), "--upstream", fake.url],
        env={**os.environ, "CORTEX_DRAIN_TIMEOUT": str(drain)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, process)
    return port, process


def body_of(sock: socket.socket, start: bytes) -> list[dict[str, object]]:
    data = (
        start
        if start.endswith(b"\r\n0\r\n\r\n")
        else start + read_until(sock, b"\r\n0\r\n\r\n", timeout=15)
    )
    _, _, chunked = data.partition(b"\r\n\r\n")
    payload = b""
    while chunked:
        size, _, rest = chunked.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        payload += rest[:length]
        chunked = rest[length + 2 :]
    return [orjson.loads(line) for line in payload.splitlines()]


def test_sigterm_lets_answers_in_flight_finish_and_refuses_new_ones(fake: FakeOllama) -> None:
    port, process = serve(fake, drain=5)
    fake.script = Script(tokens=["a", "b", "c", "d", "e"], delay=0.2)
    sock = open_raw_stream("127.0.0.1", port, HELLO)
    start = read_until(sock, b'"a"')
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with socket.socket() as late:
        assert late.connect_ex(("127.0.0.1", port)) != 0, "a draining Córtex still accepts"
    lines = body_of(sock, start)
    sock.close()
    assert "".join(str(m["message"]["content"]) for m in lines[:-1]) == "abcde"  # type: ignore[index]
    assert lines[-1]["done"] is True
    assert process.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled


def test_answers_still_running_at_the_drain_deadline_end_with_an_error(fake: FakeOllama) -> None:
    port, process = serve(fake, drain=0.5)
    fake.script = Script(count=1000, delay=0.05)
    sock = open_raw_stream("127.0.0.1", port, HELLO)
    start = read_until(sock, b"tok1 ")
    process.send_signal(signal.SIGTERM)
    lines = body_of(sock, start)
    sock.close()
    assert "shutting down" in str(lines[-1]["error"])
    assert all(m.get("done") is not True for m in lines)
    assert process.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert fake.wait_disconnect(5) is not None


def test_several_workers_share_one_port(fake: FakeOllama) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cortex", "serve", "--port", str(port), "--upstream", fake.url],
        env={**os.environ, "CORTEX_WORKERS": "2", "CORTEX_UPSTREAM_API_KEY": "sk-child"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
        fake.script = Script(tokens=["a", "b"])
        for _ in range(6):
            sock = open_raw_stream("127.0.0.1", port, HELLO)
            assert body_of(sock, b"")[-1]["done"] is True
            sock.close()
        workers = [p for p in os.listdir("/proc") if p.isdigit() and _child_of(int(p), process.pid)]
        assert len(workers) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) in (0, -signal.SIGTERM)


def _child_of(pid: int, parent: int) -> bool:
    """A worker process of ``parent`` (not multiprocessing's resource tracker)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if int(stat.read().rsplit(")", 1)[1].split()[1]) != parent:
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"spawn_main" in cmdline.read()
    except (OSError, ValueError, IndexError):
        return False


DRAINING_ROUTES = [
    ("POST", "/api/chat", HELLO, "error"),
    ("POST", "/api/embed", {"model": DEFAULT_MODEL, "input": "hola"}, "error"),
    ("POST", "/api/show", {"model": DEFAULT_MODEL}, "error"),
    ("GET", "/api/tags", None, "error"),
    ("POST", "/v1/chat/completions", HELLO, "openai"),
    ("POST", "/v1/embeddings", {"model": DEFAULT_MODEL, "input": "hola"}, "openai"),
    ("GET", "/v1/models", None, "openai"),
    ("POST", "/v1/messages", {**HELLO, "max_tokens": 5}, "anthropic"),
    ("POST", "/v1/responses", {"model": DEFAULT_MODEL, "input": "hola"}, "openai"),
]


def test_while_draining_every_api_route_refuses_in_its_dialect(
    gateway: RunningGateway,
) -> None:
    gateway.server.config.app.state.gateway.begin_drain()
    time.sleep(0.1)
    with httpx.Client(base_url=gateway.url, timeout=5) as http:
        for method, path, body, shape in DRAINING_ROUTES:
            answer = http.request(method, path, json=body)
            assert answer.status_code == 503, path
            assert answer.headers["retry-after"] == "1", path
            error = answer.json()
            if shape == "error":
                assert "shutting down" in error["error"], path
            elif shape == "openai":
                assert "shutting down" in error["error"]["message"], path
            else:
                assert error["type"] == "error", path
                assert error["error"]["type"] == "overloaded_error", path
        assert http.get("/health").status_code == 200
        assert http.get("/ready").status_code == 503
