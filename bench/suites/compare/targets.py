"""The targets: the fake upstream straight, and each relay in front of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from harness.cpu import family
from harness.processes import Gateway, Processes
from harness.relays import start_handwritten, start_nginx
from harness.servers import start_cortex

from suites.compare.plan import CORTEX, DIRECT, HAND, NGINX, TRANSLATED


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    server: Gateway | None = None  # the relay's process and log; none for direct

    @property
    def pids(self) -> tuple[int, ...]:
        return () if self.server is None else tuple(family(self.server.proc.pid))

    def log_lines(self) -> list[str]:
        lines = [] if self.server is None else self.server.log_lines()
        return [f"{self.name}: {line}" for line in lines]


async def start_relays(
    procs: Processes, upstream_port: int, workdir: Path, translated: bool, before: str = ""
) -> list[Target]:
    """Direct, then the relays in front of the upstream; the translated Córtex if asked,
    and the same from an earlier source tree (``before``)."""
    cortex = await start_cortex(procs, upstream_port)
    nginx = await start_nginx(procs, upstream_port, workdir)
    hand = await start_handwritten(procs, upstream_port)
    targets = [
        Target(DIRECT, upstream_port),
        Target(NGINX, nginx.port, nginx),
        Target(CORTEX, cortex.port, cortex),
        Target(HAND, hand.port, hand),
    ]
    if translated:
        openai = await start_cortex(procs, upstream_port, "openai")
        targets.append(Target(TRANSLATED, openai.port, openai))
    if before:
        python = ("env", f"PYTHONPATH={before}", sys.executable)  # env execs: the pid is Córtex's
        old = await start_cortex(procs, upstream_port, python=python)
        targets.append(Target(f"{CORTEX} before", old.port, old))
        if translated:
            old = await start_cortex(procs, upstream_port, "openai", python=python)
            targets.append(Target(f"{TRANSLATED} before", old.port, old))
    return targets
