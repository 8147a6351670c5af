"""Starting what the benchmarks measure against: the fake upstream, Córtex, redis-server.

Córtex runs as ``python -m cortex``: whichever ``cortex`` the interpreter imports, so
``PYTHONPATH=/other/checkout/src`` measures another tree with the same bench code (the
subprocesses inherit the variable); ``python`` runs another interpreter or path."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.machine import HERE, HOST
from harness.processes import Gateway, Processes, free_port, start_gateway


async def start_upstream(procs: Processes) -> tuple[asyncio.subprocess.Process, int]:
    """Start bench/fake_upstream.py beside the load generator; the process and its port."""
    argv = [sys.executable, str(HERE / "fake_upstream.py")]
    proc = await procs.spawn(argv, procs.pinning.load, asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    if not line.startswith(b"http://"):
        raise RuntimeError(f"the fake upstream did not start: {line!r}")
    return proc, int(line.rsplit(b":", 1)[1])


async def start_cortex(
    procs: Processes,
    upstream_port: int,
    kind: str = "ollama",
    extra: Sequence[str] = (),
    python: Sequence[str] = (sys.executable,),
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> Gateway:
    """Córtex relaying to the fake upstream in its ``kind`` dialect (ollama or openai);
    ``extra`` are more ``cortex serve`` arguments (e.g. ``--config FILE``), ``python`` the
    command that runs it, ``env`` variables added to its environment, ``log_path`` where
    its output is kept."""
    port = free_port()
    upstream = f"http://{HOST}:{upstream_port}"
    if kind != "ollama":
        upstream = f"{kind}+{upstream}"  # Córtex then calls {upstream}/v1/chat/completions
    argv = [*python, "-m", "cortex", "serve", "--port", str(port)]
    argv += ["--upstream", upstream, "--default-model", "bench"]
    argv += ["--log-level", "warning", *extra]
    return await start_gateway(procs, argv, port, env, log_path)


async def start_configured(procs: Processes, toml: str, port: int, workdir: Path) -> Gateway:
    """Córtex with all its settings in a TOML file (written to ``workdir``), on ``port``."""
    path = workdir / f"cortex-{port}.toml"
    path.write_text(toml)
    argv = [sys.executable, "-m", "cortex", "serve", "--config", str(path)]
    return await start_gateway(procs, argv, port)


@dataclass(frozen=True)
class Redis:
    proc: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


async def start_redis(procs: Processes, cpus: set[int] | None) -> Redis | None:
    """A throwaway redis-server (no persistence) on ``cpus`` once it answers PING; None
    when it is not installed."""
    server = shutil.which("redis-server")
    if server is None:
        return None
    port = free_port()
    argv = [server, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    proc = await procs.spawn(argv, cpus, procs.log_file())
    for _ in range(200):
        if await pong(port):
            return Redis(proc, port)
        await asyncio.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer on port {port}")


async def pong(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        return (await reader.readline()).startswith(b"+PONG")
    finally:
        writer.close()
