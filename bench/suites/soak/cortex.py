"""Córtex under watch: one ``cortex serve`` per upstream dialect in front of the fake, with
short timeouts, its open files, memory and log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.memory import memory_of
from harness.processes import Gateway, Processes
from harness.servers import start_cortex

IDLE_TIMEOUT = 1.0
FIRST_BYTE_TIMEOUT = 2.0
SETTINGS = {
    "CORTEX_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    "CORTEX_FIRST_BYTE_TIMEOUT": str(FIRST_BYTE_TIMEOUT),
    "CORTEX_CONNECT_TIMEOUT": "2",
    "CORTEX_CIRCUIT_FAILURES": "1000000000",  # faults are the point: keep the circuit closed
    "CORTEX_QUEUE_TIMEOUT": "5",
}


@dataclass
class SoakCortex:
    kind: str
    gateway: Gateway
    log: Path

    @property
    def port(self) -> int:
        return self.gateway.port

    def fds(self) -> int:
        return memory_of([self.gateway.proc.pid]).fds

    def rss(self) -> int:
        return memory_of([self.gateway.proc.pid]).rss

    def alive(self) -> bool:
        return self.gateway.proc.returncode is None

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")


async def start_soak_cortex(
    procs: Processes, kind: str, upstream_port: int, logs: Path
) -> SoakCortex:
    """Córtex in front of the fake as ``kind`` (ollama or openai), its log kept in ``logs``."""
    log = logs / f"cortex-{kind}.log"
    gateway = await start_cortex(procs, upstream_port, kind, env=SETTINGS, log_path=log)
    return SoakCortex(kind, gateway, log)
