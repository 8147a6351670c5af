"""The benchmark's subprocesses (pinned, logged, all stopped on the way out) and free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.machine import HOST, ROOT
from harness.pinning import Pinning, cpu_list


class Processes:
    """Subprocesses started for the benchmark, and their log files; all go on the way out."""

    def __init__(self, pinning: Pinning) -> None:
        self.pinning = pinning
        self._procs: list[asyncio.subprocess.Process] = []
        self._files = contextlib.ExitStack()

    def log_file(self, path: Path | None = None) -> IO[bytes]:
        """A temporary file for a subprocess's output, or ``path`` to keep it."""
        if path is None:
            return self._files.enter_context(tempfile.TemporaryFile())
        return self._files.enter_context(path.open("w+b"))

    async def spawn(
        self,
        argv: Sequence[str],
        cpus: set[int] | None,
        output: int | IO[bytes],
        env: Mapping[str, str] | None = None,
    ) -> asyncio.subprocess.Process:
        """Start ``argv`` on ``cpus``; ``env`` are variables added to this process's."""
        command = list(argv)
        pin: Callable[[], None] | None = None
        if cpus is not None and self.pinning.how == "taskset":
            command = ["taskset", "-c", cpu_list(cpus), *command]
        elif cpus is not None:

            def pin() -> None:
                os.sched_setaffinity(0, cpus)

        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,
            env={**os.environ, **env} if env else None,
        )
        self._procs.append(proc)
        return proc

    async def stop(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)

    async def stop_all(self) -> None:
        for proc in list(self._procs):
            await self.stop(proc)
        self._files.close()


@contextlib.asynccontextmanager
async def processes(pinning: Pinning) -> AsyncIterator[Processes]:
    procs = Processes(pinning)
    try:
        yield procs
    finally:
        await asyncio.shield(procs.stop_all())


@dataclass
class Gateway:
    """A relay subprocess (Córtex, nginx, …) listening on ``port``; its output in ``log``."""

    proc: asyncio.subprocess.Process
    port: int
    log: IO[bytes]

    def log_lines(self) -> list[str]:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").splitlines()


async def start_gateway(
    procs: Processes,
    argv: Sequence[str],
    port: int,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Gateway:
    """A relay (Córtex or another) on the relays' CPU, once it listens on ``port``; its
    output goes to a temporary file, or to ``log_path`` to keep it."""
    log = procs.log_file(log_path)
    gateway = Gateway(await procs.spawn(argv, procs.pinning.cortex, log, env), port, log)
    await wait_listening(gateway)
    return gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def wait_listening(gateway: Gateway, attempts: int = 600) -> None:
    """Wait until the relay accepts connections (up to 30 s), or fail with its log."""
    for _ in range(attempts):
        if gateway.proc.returncode is not None:
            break
        if await accepts(gateway.port):
            return
        await asyncio.sleep(0.05)
    tail = "\n".join(gateway.log_lines()[-20:])
    raise RuntimeError(f"the relay did not start listening on port {gateway.port}:\n{tail}")


async def accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    writer.close()
    return True
