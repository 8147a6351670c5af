"""Python calls on a c = 1 request's critical path, counted in process (issue #29).

    .venv/bin/python bench/path_calls.py [--tokens N]
    PYTHONPATH=/other/checkout/src .venv/bin/python bench/path_calls.py   # another tree

At c = 1 the process is idle between requests and the Python on the way runs on cold
caches, so what it costs follows how much runs. This counts it, with no clock: Córtex
serves in this process (the fake upstream in its own), a client thread sends streamed
Ollama chats one after another, and over one request after a warm-up a ``sys.setprofile``
hook on the serving thread counts each Python call and coroutine resume on two stretches:

- the client's request read → the upstream request written (from the protocol's
  ``data_received`` to the ``Deadline`` the upstream client sets just before its write);
- the upstream's first bytes → the first client write (from the upstream connection's
  ``data_received`` to the second ``HeadWithBody.write``, which carries the head and the
  first token).

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

from harness.chats import chat_request

from cortex.gcpolicy import settle_after_start
from cortex.listening import listen_socket
from cortex.server import build_server
from cortex.sources import load_settings

HERE = Path(__file__).resolve().parent
WARM_UP = 30


class Counter:
    """Python calls on the two stretches of the one request it is switched on for."""

    def __init__(self) -> None:
        self.on = False
        self.stretch = 0  # 1: request → upstream write; 2: upstream bytes → client write
        self.counts = [0, 0, 0]
        self._writes = 0

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
                self.stretch, self.on = 3, False
        if self.stretch in (1, 2):
            self.counts[self.stretch] += 1


def client(port: int, tokens: int, counter: Counter, stop: threading.Event) -> None:
    # a token every 5 ms: the first client write carries the first token only
    request = chat_request("127.0.0.1", port, tokens, 5, "ollama").raw
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


def main(tokens: int) -> int:
    fake = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        flags = {"port": 0, "upstream": url, "default_model": "bench", "log_level": "warning"}
        settings = load_settings(flags, {}, None)
        sock = listen_socket(settings)
        server = build_server(settings, settle_after_start)
        counter, stop = Counter(), threading.Event()

        def run_client() -> None:
            while not server.started:
                time.sleep(0.05)
            try:
                client(sock.getsockname()[1], tokens, counter, stop)
            finally:
                server.should_exit = True

        threading.Thread(target=run_client, daemon=True).start()
        sys.setprofile(counter)
        server.run(sockets=[sock])
        sys.setprofile(None)
    finally:
        fake.terminate()
        fake.wait()
    if not stop.is_set() or counter.stretch != 3:
        print("bench/path_calls.py: the request did not go as expected")
        return 1
    print(f"Córtex from {os.environ.get('PYTHONPATH', 'this checkout')}")
    print(f"request read -> upstream request written: {counter.counts[1]:4d} Python calls")
    print(f"upstream's first bytes -> first client write: {counter.counts[2]:4d} Python calls")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10)
    sys.exit(main(parser.parse_args().tokens))
