"""`cortex chat` and `cortex models` against Córtex in front of the fake upstream."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

import orjson

from tests.conftest import RunningGateway
from tests.fakes import FakeOllama, Script

TOKENS = ["Érase", " una", " vez", " 🦄"]


def cortex(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cortex", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CORTEX_URL": ""},
    )


def test_chat_prints_the_answer_and_a_stats_line(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(tokens=TOKENS)
    result = cortex("chat", "hola", "--url", gateway.url, "--system", "Sé breve")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(TOKENS) + "\n"
    assert "ms to first token" in result.stderr
    assert "tokens/s" in result.stderr
    sent = fake.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Sé breve"},
        {"role": "user", "content": "hola"},
    ]


def test_chat_json_prints_the_raw_chunks(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(tokens=TOKENS)
    result = cortex("chat", "hola", "--url", gateway.url, "--json", "--model", "fake-llama")
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [m["message"]["content"] for m in lines[:-1]] == TOKENS
    assert lines[-1]["done"] is True
    assert fake.requests[-1].json["model"] == "fake-llama"


def test_chat_reports_errors_and_exits_non_zero(fake: FakeOllama, gateway: RunningGateway) -> None:
    result = cortex("chat", "hola", "--url", gateway.url, "--model", "nope")
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr
    assert 'model "nope" not found' in result.stderr
    fake.script = Script(tokens=TOKENS, fault="close_mid", fault_after=2)
    broken = cortex("chat", "hola", "--url", gateway.url)
    assert broken.returncode == 1
    assert "before the answer was complete" in broken.stderr


def test_chat_without_a_server_says_so() -> None:
    result = cortex("chat", "hola", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot connect to Córtex" in result.stderr


def test_models_lists_the_catalogue(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.models = ["alpha:1b", "beta:7b"]
    result = cortex("models", "--url", gateway.url)
    assert result.returncode == 0
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["alpha:1b", "beta:7b"]


class Terminal:
    """`cortex chat` in a pseudo-terminal, as a person runs it."""

    def __init__(self, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execv(sys.executable, [sys.executable, "-m", "cortex", "chat", *args])
        self.screen = ""

    def read_until(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {text!r}; screen was {self.screen!r}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    break
        return self.screen

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def close(self) -> int:
        for _ in range(100):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError("cortex chat did not exit")


def test_interactive_chat_keeps_the_conversation(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(tokens=["Hola", "!"])
    term = Terminal("--url", gateway.url)
    term.read_until("› ")
    term.type("¿Qué tal?\r")
    term.read_until("tokens/s")
    fake.script = Script(tokens=["Muy", " bien"])
    term.type("Cuéntame más\r")
    term.read_until("Muy bien")
    term.read_until("tokens/s", timeout=5)
    term.type("\x04")  # Ctrl-D ends the session
    assert term.close() == 0
    messages = fake.requests[-1].json["messages"]
    assert messages == [
        {"role": "user", "content": "¿Qué tal?"},
        {"role": "assistant", "content": "Hola!"},
        {"role": "user", "content": "Cuéntame más"},
    ]


def test_ctrl_c_stops_the_answer_and_the_upstream(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(count=1000, delay=0.05)
    term = Terminal("--url", gateway.url)
    term.read_until("› ")
    term.type("Una historia larga\r")
    term.read_until("tok2 ")
    term.type("\x03")  # Ctrl-C
    term.read_until("[stopped]")
    assert fake.wait_disconnect(timeout=5) is not None
    term.read_until("› ")
    term.type("/exit\r")
    assert term.close() == 0
