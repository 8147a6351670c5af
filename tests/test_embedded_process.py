"""The embedded model's process: a crash there ends its answers honestly, never the gateway.

Gemma 3 270M runs for real in its child process; the tests kill that process
with the signals a bad build or the OOM killer would send, mid-answer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from cortex.backends.local import BUNDLED_NAME, LocalBackend
from cortex.embedded import bindings, frames
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeOllama
from tests.helpers import read_until

pytestmark = pytest.mark.skipif(
    not bindings.installed(), reason="the embedded model needs the 'local' extra"
)

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"
LONG_ANSWER = {
    "model": BUNDLED_NAME,
    "prompt": COUNTING,
    "raw": True,
    "options": {"num_predict": 400, "temperature": 0},
}


@pytest.fixture
def local(start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(upstream="local", first_byte_timeout=120, idle_timeout=60)


def backend_of(gateway: RunningGateway) -> LocalBackend:
    members = gateway.server.config.app.state.gateway.router.members  # type: ignore[attr-defined]
    return next(m.backend for m in members if isinstance(m.backend, LocalBackend))


def wait_for(condition: Callable[[], bool], seconds: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.02)


def start_answer(gateway: RunningGateway, path: str = "/api/generate") -> socket.socket:
    body = orjson.dumps(LONG_ANSWER)
    sock = socket.create_connection((gateway.host, gateway.port))
    sock.sendall(
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )
    return sock


def read_to_end(sock: socket.socket, timeout: float) -> bytes:
    """Everything until the server closes (the requests ask it to, with Connection: close)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def last_json_line(raw: bytes) -> dict[str, Any]:
    body = raw.partition(b"\r\n\r\n")[2]
    lines = [line for line in body.split(b"\r\n") if line.startswith(b"{")]
    return orjson.loads(lines[-1])  # type: ignore[no-any-return]


def status_of(gateway: RunningGateway) -> dict[str, Any]:
    backends = httpx.get(gateway.url + "/cortex/backends", timeout=5).json()["backends"]
    return next(b for b in backends if b["kind"] == "local")  # type: ignore[no-any-return]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGILL], ids=["SIGKILL", "SIGILL"])
def test_a_crash_mid_answer_ends_it_in_band_and_the_gateway_serves_on(
    local: RunningGateway, sig: signal.Signals
) -> None:
    backend = backend_of(local)
    first_child = backend.process.pid
    assert first_child is not None
    sock = start_answer(local)
    head = read_until(sock, b'"response"')
    assert b"200 OK" in head
    os.kill(first_child, sig)
    killed_at = time.monotonic()
    rest = read_to_end(sock, timeout=5)
    ended_after = time.monotonic() - killed_at
    sock.close()
    last = last_json_line(head + rest)
    assert sig.name in last["error"], last
    assert "done" not in last
    assert ended_after < 1.0, f"the answer took {ended_after:.2f} s to end after the crash"
    assert httpx.get(local.url + "/health", timeout=2).status_code == 200
    wait_for(lambda: backend.state == "ready", what="the restarted model")
    assert backend.process.pid != first_child
    answer = httpx.post(
        local.url + "/api/generate", json={**LONG_ANSWER, "options": {"num_predict": 3}}, timeout=60
    )
    assert answer.status_code == 200
    assert orjson.loads(answer.content.splitlines()[-1])["done"] is True
    assert status_of(local)["restarts"] == 1


def test_an_openai_stream_cut_by_a_crash_raises_in_the_sdk(local: RunningGateway) -> None:
    backend = backend_of(local)
    client = openai.OpenAI(base_url=local.url + "/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(
        model=BUNDLED_NAME,
        messages=[{"role": "user", "content": "Cuenta una historia larga sobre piratas"}],
        max_tokens=400,
        stream=True,
    )
    next(iter(stream))
    assert backend.process.pid is not None
    os.kill(backend.process.pid, signal.SIGILL)
    with pytest.raises(openai.APIError, match="SIGILL"):
        for _ in stream:
            pass
    client.close()


def test_a_crash_before_the_first_token_is_a_503_with_the_reason(local: RunningGateway) -> None:
    backend = backend_of(local)
    pid = backend.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the request reaches a child that will never answer it
    try:
        sock = start_answer(local)
        wait_for(lambda: backend.busy, 5, "the request to reach the child")
    finally:
        os.kill(pid, signal.SIGKILL)
    raw = read_to_end(sock, timeout=5)
    sock.close()
    assert raw.startswith(b"HTTP/1.1 503"), raw[:200]
    assert "SIGKILL" in last_json_line(raw)["error"]


def test_other_backends_serve_while_the_embedded_model_is_down(
    start_gateway: StartGateway, fake: FakeOllama
) -> None:
    gateway = start_gateway(
        backends=[{"url": fake.url, "name": "ollama"}, {"url": "local", "name": "embedded"}],
        first_byte_timeout=60,
    )
    backend = backend_of(gateway)
    for crash in range(3):  # three crashes within a minute: down
        wait_for(lambda: backend.state == "ready", what=f"the model before crash {crash + 1}")
        assert backend.process.pid is not None
        os.kill(backend.process.pid, signal.SIGKILL)
        wait_for(lambda: backend.state != "ready", 5, "the supervisor to notice")
    assert backend.state == "down"
    status = status_of(gateway)
    assert status["state"] == "down" and status["healthy"] is False
    assert "SIGKILL" in status["problem"]
    ready = httpx.get(gateway.url + "/ready", timeout=5)
    assert ready.status_code == 200  # the Ollama backend still answers
    refused = httpx.post(
        gateway.url + "/api/generate", json={**LONG_ANSWER, "stream": False}, timeout=10
    )
    assert refused.status_code == 503
    assert "SIGKILL" in refused.json()["error"]
    assert refused.headers["retry-after"]
    relayed = httpx.post(
        gateway.url + "/api/chat",
        json={"model": fake.models[0], "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert relayed.status_code == 200
    assert relayed.headers["x-cortex-backend"] == "ollama"
    assert orjson.loads(relayed.content.splitlines()[-1])["done"] is True
    wait_for(lambda: backend.state == "ready", 60, "the model to come back after its pause")


def test_a_lone_embedded_model_that_is_down_makes_ready_say_why(local: RunningGateway) -> None:
    backend = backend_of(local)
    for crash in range(3):
        wait_for(lambda: backend.state == "ready", what=f"the model before crash {crash + 1}")
        assert backend.process.pid is not None
        os.kill(backend.process.pid, signal.SIGKILL)
        wait_for(lambda: backend.state != "ready", 5, "the supervisor to notice")
    ready = httpx.get(local.url + "/ready", timeout=5)
    assert ready.status_code == 503
    assert "SIGKILL" in ready.json()["error"]
    assert httpx.get(local.url + "/health", timeout=2).status_code == 200


def test_a_model_that_fails_its_self_test_is_reported_not_served(
    start_gateway: StartGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    caplog.set_level("INFO", logger="cortex")
    gateway = start_gateway(upstream="local", local_model_path=broken)
    backend = backend_of(gateway)
    assert backend.state == "down"
    banner = next(r.getMessage() for r in caplog.records if "listening on" in r.getMessage())
    assert "not serving the embedded model broken" in banner
    assert "did not load" in banner
    assert httpx.get(gateway.url + "/health", timeout=2).status_code == 200
    ready = httpx.get(gateway.url + "/ready", timeout=5)
    assert ready.status_code == 503 and "did not load" in ready.json()["error"]
    refused = httpx.post(
        gateway.url + "/api/chat",
        json={"model": "broken", "messages": [{"role": "user", "content": "hola"}]},
        timeout=10,
    )
    assert refused.status_code == 503
    assert "did not load" in refused.json()["error"]


def test_the_model_runs_at_most_a_window_ahead_of_its_reader() -> None:
    payload = {**LONG_ANSWER, "options": {"num_predict": 60, "temperature": 0}}

    async def scenario() -> None:
        backend = LocalBackend()
        await backend.start()
        process = backend.process
        try:
            async with backend.open("POST", "/api/generate", orjson.dumps(payload)) as answer:
                for _ in range(240):  # until half a second passes with no line, after the first
                    seen = process.lines_received
                    await asyncio.sleep(0.5)
                    if seen and process.lines_received == seen:
                        break
                assert seen == frames.WINDOW, f"{seen} lines sent to a reader that took none"
                assert backend.busy
                body = b""
                while chunk := await answer.read():
                    body += chunk
            lines = [orjson.loads(line) for line in body.splitlines()]
            assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 60
            assert len(lines) == 61
        finally:
            await backend.close()

    asyncio.run(scenario())
