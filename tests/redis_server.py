"""A real redis-server on a loopback port, for the tests of shared limits.

Debian's ``redis-server`` (installed by scripts/test when run as root), started
with no persistence; tests that need it are skipped, saying why, without it.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

BINARY = "redis-server"
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


class RedisServer:
    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [*(BINARY, "--port", str(self.port), "--bind", "127.0.0.1"), *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            assert self._process.poll() is None, "redis-server exited at start"
            time.sleep(0.02)
        raise AssertionError("redis-server did not answer within 10 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def pause(self) -> None:
        """Stop the process (SIGSTOP): connections stay open and nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def running_redis() -> Iterator[RedisServer]:
    """For a test module's ``redis_server`` fixture: a started server, stopped afterwards."""
    if shutil.which(BINARY) is None:
        pytest.skip("redis-server is not installed (scripts/test installs it with apt-get as root)")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
