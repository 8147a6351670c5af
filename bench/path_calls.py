"""Python calls on a c = 1 request's critical path, and on a token's, counted in process
(issue #29).

    .venv/bin/python bench/path_calls.py [--dialect ollama|openai] [--kind ollama|openai]
    PYTHONPATH=/other/checkout/src .venv/bin/python bench/path_calls.py   # another tree

At c = 1 the process is idle between requests and the Python on the way runs on cold
caches, so what it costs follows how much runs. This counts it, with no clock: Córtex
serves in this process (the fake upstream in its own), a client thread sends streamed
chats one after another (``--dialect``, the client's; ``--kind``, the upstream's: Ollama
by default), and over one request after a warm-up a ``sys.setprofile`` hook on the serving
thread counts each Python call and coroutine resume on three stretches:

- the client's request read → the upstream request written (from the protocol's
  ``data_received`` to the ``Deadline`` the upstream client sets just before its write);
- the upstream's first bytes → the first client write (from the upstream connection's
  ``data_received`` to the second ``HeadWithBody.write``, which carries the head and the
  first token);
- a token in the middle of the stream, as a model sends it: the calls from the upstream
  connection's ``data_received`` of the 20th token to that of the 30th, over ten.

The counts move only when the code does: compare two trees by running both.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from harness.chats import Dialect, chat_request

from cortex.gcpolicy import settle_after_start
from cortex.listening import listen_socket
from cortex.server import build_server
from cortex.sources import load_settings

HERE = Path(__file__).resolve().parent
WARM_UP = 30


TOKENS = 40  # the stream's length: the third stretch is its 20th to 30th token
FIRST, LAST = 20, 30


class Counter:
    """Python calls on the three stretches of the one request it is switched on for."""

    def __init__(self) -> None:
        self.on = False
        # 1: request → upstream write; 2: upstream bytes → client write; 3: tokens 20 to 30
        self.stretch = 0
        self.counts = [0, 0, 0, 0]
        self._writes = 0
        self._reads = 0

    def __call__(self, frame: FrameType, event: str, _: Any) -> None:
        if not self.on or event != "call":
            return
        code = frame.f_code
        name, file = code.co_qualname, code.co_filename
        if self.stretch == 0 and name.endswith("data_received") and "protocol.py" in file:
            self.stretch = 1
        elif self.stretch == 1 and name == "Deadline.__init__":
            self.stretch = -1  # the write comes next; nothing to count until the answer
        elif self.stretch == -1 and name == "Connection.data_received":
            self.stretch = 2
        elif self.stretch == 2 and name == "HeadWithBody.write":
            self._writes += 1
            if self._writes == 2:
                self.stretch = -2  # the first token went out: the stream's middle is next
        if self.stretch in (-2, 3) and name == "Connection.data_received" and "h1" in file:
            self._reads += 1  # the first token's read was the second stretch's
            if self._reads == FIRST - 1:
                self.stretch = 3
            elif self._reads == LAST - 1:
                self.stretch, self.on = 4, False
        if self.stretch in (1, 2, 3):
            self.counts[self.stretch] += 1


def client(port: int, dialect: Dialect, counter: Counter, stop: threading.Event) -> None:
    # a token every 5 ms: the first client write carries the first token only
    request = chat_request("127.0.0.1", port, TOKENS, 5, dialect).raw
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for n in range(WARM_UP + 1):
            counter.on = n == WARM_UP
            time.sleep(0.01)  # the serving thread is idle when the request comes
            sock.sendall(request)
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("Córtex closed the connection")
                answer += chunk
    stop.set()


def main(dialect: Dialect, kind: Dialect) -> int:
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        upstream = url if kind == "ollama" else f"openai+{url}"
        flags = {"port": 0, "upstream": upstream, "default_model": "bench", "log_level": "warning"}
        settings = load_settings(flags, {}, None)
        sock = listen_socket(settings)
        server = build_server(settings, settle_after_start)
        counter, stop = Counter(), threading.Event()

        def run_client() -> None:
            while not server.started:
                time.sleep(0.05)
            try:
                client(sock.getsockname()[1], dialect, counter, stop)
            finally:
                server.should_exit = True

        threading.Thread(target=run_client, daemon=True).start()
        sys.setprofile(counter)
        server.run(sockets=[sock])
        sys.setprofile(None)
    finally:
        fake.terminate()
        fake.wait()
    if not stop.is_set() or counter.stretch != 4:
        print("bench/path_calls.py: the request did not go as expected")
        return 1
    print(f"Córtex from {os.environ.get('PYTHONPATH', 'this checkout')}: {dialect} -> {kind}")
    print(f"request read -> upstream request written: {counter.counts[1]:4d} Python calls")
    print(f"upstream's first bytes -> first client write: {counter.counts[2]:4d} Python calls")
    per_token = counter.counts[3] / (LAST - FIRST)
    print(f"a token in the middle of the stream: {per_token:21.1f} Python calls")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=["ollama", "openai"], default="ollama")
    parser.add_argument("--kind", choices=["ollama", "openai"], default="ollama")
    arguments = parser.parse_args()
    sys.exit(main(arguments.dialect, arguments.kind))
