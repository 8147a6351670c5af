"""The seed design's three curl examples, run with curl against `cortex serve` itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.fakes import FakeOllama, Script

SEED_COMMANDS = {
    "unicorn": """curl -N -X POST http://localhost:4000/api/chat \\
-H "Content-Type: application/json" \\
-d '{
  "messages": [
    {
      "role": "user",
      "content": "Escribe un cuento corto para mi hija sobre un unicornio"
    }
  ]
}'""",
    "tortilla": """curl -N -X POST http://localhost:4000/api/chat \\
-H "Content-Type: application/json" \\
-d '{
  "messages": [
    {
      "role": "user",
      "content": "Explica paso a paso cómo hacer una tortilla española"
    }
  ]
}'""",
    "pirates": """curl -N -X POST http://localhost:4000/api/chat \\
-H "Content-Type: application/json" \\
-H "Accept: text/event-stream" \\
-w "\\n\\nTiempo total: %{time_total}s\\n" \\
-d '{
  "messages": [
    {
      "role": "user",
      "content": "Cuenta una historia larga sobre piratas"
    }
  ]
}'""",
}

STORY = ["Había", " una", " vez", " un", " unicornio", " llamado", " Ñandú", " 🦄", "."]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until Córtex answers ``/ready``: the socket accepts before the app has started."""
    for _ in range(300):
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("cortex serve did not become ready")


@pytest.fixture
def served(fake: FakeOllama) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`cortex serve` as a user runs it, in front of the fake Ollama."""
    port = free_port()
    env = {**os.environ, "CORTEX_UPSTREAM": fake.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "cortex", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(port, process)
        yield port, process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
        assert process.stdout and process.stderr
        process.stdout.close()
        process.stderr.close()


def run_seed(name: str, port: int) -> subprocess.CompletedProcess[str]:
    command = SEED_COMMANDS[name].replace("localhost:4000", f"127.0.0.1:{port}")
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
    )


@pytest.mark.parametrize("name", ["unicorn", "tortilla"])
def test_seed_curl_examples_stream_ndjson(
    name: str, fake: FakeOllama, served: tuple[int, subprocess.Popen[bytes]]
) -> None:
    fake.script = Script(tokens=STORY, delay=0.01)
    result = run_seed(name, served[0])
    messages = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert "".join(m["message"]["content"] for m in messages) == "".join(STORY)
    assert messages[-1]["done"] is True
    sent = fake.requests[-1].json
    assert sent["model"] == "fake-llama:latest"
    assert sent["messages"][0]["content"] in SEED_COMMANDS[name]


def test_seed_curl_pirate_story_streams_sse_with_total_time(
    fake: FakeOllama, served: tuple[int, subprocess.Popen[bytes]]
) -> None:
    fake.script = Script(tokens=STORY, delay=0.01)
    result = run_seed("pirates", served[0])
    body, _, timing = result.stdout.rpartition("\n\nTiempo total: ")
    events = [e for e in body.strip().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    messages = [orjson.loads(e[len("data: ") :]) for e in events]
    assert "".join(m["message"]["content"] for m in messages) == "".join(STORY)
    assert messages[-1]["done"] is True
    assert float(timing.strip().rstrip("s")) > 0


def test_serve_logs_a_startup_banner(served: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, process = served
    process.send_signal(signal.SIGINT)
    process.wait(10)
    assert process.stderr
    log = process.stderr.read().decode()
    assert f"listening on http://127.0.0.1:{port}" in log
    assert "relaying to Ollama at http://127.0.0.1:" in log


def test_serve_rejects_bad_settings_with_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cortex", "serve", "--upstream", "ftp://nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unsupported upstream scheme" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reports_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cortex", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1" in result.stderr
