"""The targets: the fake upstream straight in each dialect, Córtex in front of it with one
worker (pinned to the relays' CPU, as the harness pins relays) or two (on both CPUs: the
only way two workers get two cores here, so they share one with the load side), and the
references measured beside it on the same machine: nginx, a Go reverse proxy and Python's
floor (a byte pipe), each on the relays' CPU, forwarding the Ollama path, and LiteLLM's
proxy, a gateway in Python, on OpenAI's path, when it is installed."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from harness.cpu import family
from harness.loadgen import DIALECTS, Dialect
from harness.processes import Gateway, Processes
from harness.relays import (
    nginx_binary,
    start_go_relay,
    start_litellm,
    start_nginx,
    start_pipe_relay,
)
from harness.servers import start_cortex

from suites.compare.targets import Target as Relay


@dataclass(frozen=True, kw_only=True)
class Target(Relay):
    """Where a client of ``client`` dialect sends its requests; ``upstream`` is the dialect
    the fake speaks behind it (the direct baseline is a client of that dialect)."""

    client: Dialect
    upstream: Dialect
    workers: int = 0  # 0: the fake upstream straight
    reference: bool = False  # another relay, measured beside Córtex in the same run

    @property
    def path(self) -> str:
        return f"{self.client}→{self.upstream}"


def direct(upstream_port: int, dialect: Dialect) -> Target:
    return Target(name=f"direct {dialect}", port=upstream_port, client=dialect, upstream=dialect)


async def start_cortexes(
    procs: Processes, upstream_port: int, extra: tuple[str, ...] = ()
) -> dict[tuple[Dialect, int], Gateway]:
    """Córtex in front of the fake as Ollama and as OpenAI, with 1 and with 2 workers."""
    out: dict[tuple[Dialect, int], Gateway] = {}
    both = (procs.pinning.cortex or set()) | (procs.pinning.load or set()) or None
    for upstream in DIALECTS:
        out[upstream, 1] = await start_cortex(procs, upstream_port, upstream, extra)
        two = [*extra, "--workers", "2"]
        # started pinned like any relay, then let onto both CPUs with its workers
        gateway = await start_cortex(procs, upstream_port, upstream, two)
        await widen(gateway, 2, both)
        out[upstream, 2] = gateway
    return out


async def widen(gateway: Gateway, workers: int, cpus: set[int] | None) -> None:
    """Wait for the workers of a Córtex started pinned, then let them all onto ``cpus``."""
    for _ in range(200):
        if len(family(gateway.proc.pid)) > workers:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"Córtex did not start {workers} workers")
    if cpus is not None:
        for pid in family(gateway.proc.pid):
            os.sched_setaffinity(pid, cpus)


NGINX = "nginx"
GO = "Go ReverseProxy"
PIPE = "Python byte pipe"
LITELLM = "LiteLLM"


async def reference_targets(procs: Processes, upstream_port: int, workdir: Path) -> list[Target]:
    """nginx, the Go relay and the Python byte pipe in front of the fake, Ollama → Ollama,
    and LiteLLM, OpenAI → OpenAI, one process each on the relays' CPU; a reference that is
    not installed is left out, with a line saying so."""
    out = []
    try:
        nginx_binary()
    except RuntimeError as missing:
        print(f"  no nginx reference: {missing}", flush=True)
    else:
        nginx = await start_nginx(procs, upstream_port, workdir)
        out.append(reference(NGINX, nginx))
    go = await start_go_relay(procs, upstream_port, workdir)
    if go is None:
        print("  no Go reference: Go is not installed (apt-get install golang-go)", flush=True)
    else:
        out.append(reference(GO, go))
    out.append(reference(PIPE, await start_pipe_relay(procs, upstream_port)))
    litellm = await start_litellm(procs, upstream_port, workdir)
    if litellm is None:
        print("  no LiteLLM reference: not installed (see harness/relays.py)", flush=True)
    else:
        out.append(reference(LITELLM, litellm, "openai"))
    return out


def reference(name: str, relay: Gateway, dialect: Dialect = "ollama") -> Target:
    return Target(
        name=f"{name}, {dialect}→{dialect}",
        port=relay.port,
        server=relay,
        client=dialect,
        upstream=dialect,
        workers=1,
        reference=True,
    )


def gateway_targets(cortexes: dict[tuple[Dialect, int], Gateway]) -> list[Target]:
    """The sweep's gateway targets: both same-dialect paths with 1 and 2 workers, and the
    translated pair (an OpenAI client in front of an Ollama upstream) with 1."""
    out = []
    for client, upstream, workers in SWEPT:
        gateway = cortexes[upstream, workers]
        name = f"{client}→{upstream}, {workers} worker{'s' if workers > 1 else ''}"
        out.append(
            Target(
                name=name,
                port=gateway.port,
                server=gateway,
                client=client,
                upstream=upstream,
                workers=workers,
            )
        )
    return out


SWEPT: tuple[tuple[Dialect, Dialect, int], ...] = (
    ("ollama", "ollama", 1),
    ("ollama", "ollama", 2),
    ("openai", "openai", 1),
    ("openai", "openai", 2),
    ("openai", "ollama", 1),
)
