"""A model's weights through Córtex: ``POST /api/blobs`` streamed, against the same upload
straight to the server.

    .venv/bin/python bench/blobs.py [--quick]

A blob sink in this process stands for an Ollama server: it reads a blob's body as it
comes, counts it and answers 201 (every other path gets Ollama's 404). Córtex runs in
front of it, pinned as the harness pins relays. In alternating rounds, one upload of the
plan's size with ``Content-Length`` goes straight to the sink and one through Córtex:
the throughput of each, Córtex's CPU per GiB, and its peak resident memory (``VmHWM``)
before the first upload and after the last, which stays flat when no blob is held whole.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cli import parser, quick_or_full, run_benchmark
from harness.cpu import cpu_seconds
from harness.machine import HOST
from harness.processes import processes
from harness.results import begin_run, write_results
from harness.servers import start_cortex
from harness.tables import Table

MiB = 1024 * 1024
PIECE = b"\x5a" * MiB


@dataclass(frozen=True)
class Plan:
    rounds: int = 5
    mib: int = 2048


QUICK = Plan(rounds=2, mib=256)


async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An Ollama that stores blobs nowhere: reads each body whole, then answers 201."""
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            if not head.startswith("POST /api/blobs/"):
                body = b'{"error":"not found"}'
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n")
                writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                continue
            length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
            while length > 0:
                length -= len(await reader.read(min(length, 4 * MiB)))
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def upload(port: int, mib: int) -> float:
    """Seconds to upload ``mib`` MiB to ``port`` and read its 201."""
    reader, writer = await asyncio.open_connection(HOST, port)
    digest = "sha256:" + secrets.token_hex(32)
    started = time.perf_counter()
    writer.write(
        f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Length: {mib * MiB}\r\n\r\n".encode()
    )
    for _ in range(mib):
        writer.write(PIECE)
        await writer.drain()
    status = await reader.readline()
    took = time.perf_counter() - started
    writer.close()
    if not status.startswith(b"HTTP/1.1 201"):
        raise RuntimeError(f"the upload to port {port} was answered {status!r}")
    return took


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


async def main(plan: Plan, mode: str) -> int:
    report, pinning = begin_run("Blob uploads straight and through Córtex", mode, plan)
    server = await asyncio.start_server(sink, HOST, 0)
    sink_port = server.sockets[0].getsockname()[1]
    async with server, processes(pinning) as procs:
        cortex = await start_cortex(procs, sink_port)
        pid = cortex.proc.pid
        await upload(cortex.port, 8)  # warm: imports, the first connection
        peak_before = peak_rss_mib(pid)
        straight: list[float] = []
        through: list[float] = []
        cpu: list[float] = []
        for _ in range(plan.rounds):
            straight.append(plan.mib / await upload(sink_port, plan.mib))
            used = cpu_seconds(pid)
            through.append(plan.mib / await upload(cortex.port, plan.mib))
            cpu.append((cpu_seconds(pid) - used) / (plan.mib / 1024))
        peak_after = peak_rss_mib(pid)
    table = Table([f"{plan.mib} MiB blob, {plan.rounds} rounds (median)", "value"])
    table.add("straight to the server (MiB/s)", f"{statistics.median(straight):.0f}")
    table.add("through Córtex (MiB/s)", f"{statistics.median(through):.0f}")
    share = statistics.median(through) / statistics.median(straight)
    table.add("through / straight", f"×{share:.2f}")
    table.add("Córtex CPU per GiB (s)", f"{statistics.median(cpu):.2f}")
    table.add("Córtex peak RSS before / after (MiB)", f"{peak_before:.0f} / {peak_after:.0f}")
    report.tables.append(table)
    report.data.update(
        straight_mib_s=straight,
        through_mib_s=through,
        cpu_s_per_gib=cpu,
        through_over_straight=share,
        peak_rss_mib={"before": peak_before, "after": peak_after},
    )
    report.finish([])
    report.print_tables()
    report.print_end(write_results("blobs", report.data))
    return 0


if __name__ == "__main__":
    args = parser(__doc__, "two rounds of 256 MiB").parse_args()
    plan, mode = quick_or_full(args.quick, Plan(), QUICK)
    run_benchmark(main(plan, mode), "Córtex")
