"""``--workers 2``: each worker listens on its own socket (SO_REUSEPORT), the kernel spreads
new connections across them, SIGTERM drains them all, a killed one is replaced.

Which worker holds a connection is read from the kernel, not from Córtex: a worker's
sockets are the inodes behind /proc/<pid>/fd, and /proc/net/tcp names each inode's
addresses and state."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cortex.backoff import Backoff
from cortex.listening import serving_mode
from cortex.workers import Supervisor
from tests.fakes import FakeOllama, Script
from tests.helpers import open_raw_stream, read_until
from tests.test_drain import HELLO, _child_of, body_of
from tests.test_seed_and_cli import free_port, wait_listening

pytestmark = pytest.mark.skipif(
    serving_mode(2) != "a socket per worker", reason="a socket per worker is Linux's"
)

CONNECTIONS = 64
# Each new connection goes to one of the two sockets by a hash of its ports, so the
# count a worker gets is Binomial(64, 1/2); either getting fewer than 13 (20%) has
# probability 2 * P(X <= 12) = 4.6e-7.
FAIR_SHARE = 13
ESTABLISHED, LISTENING = "01", "0A"
T = TypeVar("T")


def start(
    fake: FakeOllama, log: Path, port: int | None = None, drain: float = 5
) -> tuple[int, subprocess.Popen[bytes]]:
    chosen = free_port() if port is None else port
    command = ["-m", "cortex", "serve", "--port", str(chosen), "--upstream", fake.url]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, *command],
            env={**os.environ, "CORTEX_WORKERS": "2", "CORTEX_DRAIN_TIMEOUT": str(drain)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        if chosen == 0:
            chosen = wait_for(lambda: _announced_port(log) or 0, process)
        wait_listening(chosen, process)
        wait_for(lambda: len(workers_listening(process.pid, chosen)) == 2, process)
    except BaseException:  # a Córtex that never got ready is not left running
        process.kill()
        process.wait(10)
        raise
    return chosen, process


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "cortex.log"


@pytest.fixture
def running(fake: FakeOllama, log: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port, process = start(fake, log)
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(20)


def test_each_worker_gets_a_fair_share_of_new_connections(
    running: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = running
    clients = [health_check(port) for _ in range(CONNECTIONS)]
    try:
        held = connections_held(worker_pids(process.pid), clients)
        assert sum(held.values()) == CONNECTIONS
        assert len(held) == 2 and min(held.values()) >= FAIR_SHARE, held
    finally:
        for client in clients:
            client.close()


def test_the_supervisor_never_listens(running: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, process = running
    listeners = workers_listening(process.pid, port)
    assert sorted(listeners) == sorted(worker_pids(process.pid))
    assert process.pid not in listening_pids([process.pid], port)


def test_sigterm_drains_every_worker(fake: FakeOllama, log: Path) -> None:
    port, process = start(fake, log, drain=10)
    fake.script = Script(tokens=[f"t{n} " for n in range(10)], delay=0.3)
    workers = worker_pids(process.pid)
    streams: list[tuple[socket.socket, bytes]] = []
    while len(connections_held(workers, [s for s, _ in streams])) < 2 and len(streams) < 30:
        sock = open_raw_stream("127.0.0.1", port, HELLO)
        streams.append((sock, read_until(sock, b"t0 ")))
    assert len(connections_held(workers, [s for s, _ in streams])) == 2
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with socket.socket() as late:
        assert late.connect_ex(("127.0.0.1", port)) != 0, "a draining Córtex still accepts"
    for sock, start_bytes in streams:
        lines = body_of(sock, start_bytes)
        sock.close()
        text = "".join(str(m["message"]["content"]) for m in lines[:-1])  # type: ignore[index]
        assert text == "".join(f"t{n} " for n in range(10))
        assert lines[-1]["done"] is True
    assert process.wait(20) == 0


def test_a_killed_worker_is_replaced_and_serves(
    running: tuple[int, subprocess.Popen[bytes]], log: Path
) -> None:
    port, process = running
    killed, kept = worker_pids(process.pid)
    os.kill(killed, signal.SIGKILL)
    # A killed process keeps its socket until the kernel has torn it down: two listeners
    # may still be the killed one and the kept one, so wait for a third pid.
    replacement = wait_for(
        lambda: next(
            (p for p in workers_listening(process.pid, port) if p not in (killed, kept)), 0
        ),
        process,
    )
    assert "exited unexpectedly (signal SIGKILL)" in log.read_text()
    clients = [health_check(port) for _ in range(CONNECTIONS)]
    try:
        held = connections_held([replacement, kept], clients)
        assert held.get(replacement, 0) >= FAIR_SHARE, held
    finally:
        for client in clients:
            client.close()


def test_workers_drain_and_exit_when_their_supervisor_is_killed(
    running: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = running
    workers = worker_pids(process.pid)
    assert len(workers) == 2
    process.kill()  # no word to the workers: the kernel tells them (PR_SET_PDEATHSIG)
    process.wait(10)
    deadline = time.monotonic() + 20
    while not all(map(exited, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in workers if not exited(pid)] == []
    with socket.socket() as late:
        assert late.connect_ex(("127.0.0.1", port)) != 0, "an orphaned worker still listens"


def exited(pid: int) -> bool:
    """Gone, or a zombie that nobody reaped (an orphan's parent may not be an init)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def test_port_zero_is_chosen_once_for_every_worker(fake: FakeOllama, log: Path) -> None:
    port, process = start(fake, log, port=0)
    try:
        assert port != 0
        assert len(workers_listening(process.pid, port)) == 2
        announced = re.findall(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
        assert announced == [str(port), str(port)]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_without_so_reuseport_workers_share_one_socket(fake: FakeOllama, log: Path) -> None:
    port = free_port()
    run_cli = "import socket, sys; del socket.SO_REUSEPORT; from cortex.cli import main; main()"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", run_cli, "serve", "--port", str(port), "--upstream", fake.url],
            env={**os.environ, "CORTEX_WORKERS": "2"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_listening(port, process)
        assert "one shared socket" in log.read_text()
        assert listening_pids([process.pid], port) == [process.pid]  # uvicorn's supervisor's
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) in (0, -signal.SIGTERM)


def exit_before_starting(started: object) -> None:
    sys.exit(3)


def test_workers_that_cannot_start_stop_the_supervisor_without_restarts() -> None:
    supervisor = Supervisor(2, exit_before_starting, (), drain_timeout=1)
    assert supervisor.run() is False
    assert all(slot.process is None and slot.start_at is None for slot in supervisor.slots)
    assert all(slot.backoff.deaths == 0 for slot in supervisor.slots)


def test_restarts_pause_longer_while_workers_keep_dying() -> None:
    backoff = Backoff(first=0.5, longest=4, steady=60)
    assert [backoff.after(lived=1) for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff.after(lived=60) == 0.5  # it had served a while: a new fault
    assert backoff.after(lived=0.1) == 1


def test_workers_get_their_own_sockets_on_linux_only() -> None:
    assert serving_mode(1, "linux") == "one process"
    assert serving_mode(4, "linux") == "a socket per worker"
    assert serving_mode(4, "darwin") == "one shared socket"  # SO_REUSEPORT, not spread


def health_check(port: int) -> socket.socket:
    """A new connection that has been answered once, and is kept open."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 200")
    return sock


def worker_pids(parent: int) -> list[int]:
    return [p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if _child_of(p, parent)]


def workers_listening(parent: int, port: int) -> list[int]:
    return listening_pids(worker_pids(parent), port)


def listening_pids(pids: list[int], port: int) -> list[int]:
    """Those of ``pids`` with a socket listening on ``port``."""
    table = tcp_table()
    listeners = {i for i, (local, _, state) in table.items() if (local, state) == (port, LISTENING)}
    return [pid for pid in pids if socket_inodes(pid) & listeners]


def connections_held(pids: list[int], clients: list[socket.socket]) -> dict[int, int]:
    """How many of ``clients``' connections each process holds the server end of."""
    ports = {client.getsockname()[1] for client in clients}
    table = tcp_table()
    held: dict[int, int] = {}
    for pid in pids:
        for inode in socket_inodes(pid):
            _, remote, state = table.get(inode, (0, 0, ""))
            if state == ESTABLISHED and remote in ports:
                held[pid] = held.get(pid, 0) + 1
    return held


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_table() -> dict[int, tuple[int, int, str]]:
    """Each TCP socket's inode: its local port, remote port and state (hex, as the kernel
    writes it)."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
                table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote[-4:], 16), state)
    return table


def wait_for(found: Callable[[], T], process: subprocess.Popen[bytes], seconds: float = 30) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "Córtex exited"
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("Córtex did not get there")


def _announced_port(log: Path) -> int | None:
    found = re.search(r"worker processes on http://[^ ]*:(\d+)", log.read_text())
    return int(found.group(1)) if found else None
