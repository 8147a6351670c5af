"""Instructions Córtex executes per request and per token, counted by callgrind (issue #29).

    .venv/bin/python bench/instructions.py [--requests N] [--kind ollama|openai] [--only NAME]
                                           [--dialect ollama|openai] [--keep DIR]

CPU time on a shared machine moves by tens of per cent from run to run; the number of
instructions a fixed load makes Córtex execute barely moves, so a change to the hot
path shows in it even when wall time hides it. Córtex runs under valgrind's callgrind
with instrumentation off while it starts (start-up at a few times native speed), then
on for the loads; each load is warmed up, its counters zeroed, measured and dumped:

- ``c1``: streamed 10-token chats one after another (instructions per request);
- ``c64``: the same at concurrency 64 (per request);
- ``paced``: 4 streams of 200 tokens, a token every 10 ms, as a model generates
  (per token: the load's instructions less 4 requests' worth from ``c1``, over the tokens).

valgrind must be installed (Debian's ``valgrind``). Counts are those of the process
(its C code, the interpreter, the kernel's share excluded), and under valgrind the
clock runs slower, so figures that depend on batching (``c64``) are for comparison
between two trees on this script only. ``PYTHONPATH=/other/src`` counts another tree.
``--kind`` is the upstream's dialect, ``--dialect`` the client's (both Ollama's unless
said): ``--dialect openai`` counts OpenAI chat completions translated to Ollama.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.cli import run
from harness.loadgen import ChatRequest, Dialect, chat_request, checked, run_load
from harness.machine import HOST
from harness.pinning import choose_pinning
from harness.processes import processes
from harness.servers import start_cortex, start_upstream


@dataclass(frozen=True)
class Load:
    name: str
    tokens: int
    delay_ms: float
    requests: int
    concurrency: int


def loads(requests: int) -> list[Load]:
    return [
        Load("c1", 10, 0, requests, 1),
        Load("c64", 10, 0, max(requests, 64 * 4), 64),
        Load("paced", 200, 10, 4, 4),
    ]


def counted(out_dir: Path, pid: int) -> int:
    """Dump the counters of callgrind in ``pid``; the instructions since they were zeroed."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    dumps = sorted(out_dir.glob(f"cg.{pid}*"), key=lambda p: p.stat().st_mtime)
    text = dumps[-1].read_text(errors="replace")
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if found is None:
        raise RuntimeError(f"no totals in {dumps[-1]}")
    return int(found.group(1))


# callgrind_control returns at once, and the copies are made after the loads
# ruff: noqa: ASYNC221, ASYNC240
async def measure(load: Load, port: int, pid: int, out_dir: Path, dialect: Dialect) -> int:
    request: ChatRequest = chat_request(HOST, port, load.tokens, load.delay_ms, dialect)
    warm = min(load.requests, 64 if load.concurrency > 1 else 30)
    checked((await run_load(HOST, port, request, warm, load.concurrency))[0], "warm-up")
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    checked((await run_load(HOST, port, request, load.requests, load.concurrency))[0], load.name)
    return counted(out_dir, pid)


async def main(
    requests: int, kind: str, only: str | None, keep: Path | None, dialect: Dialect
) -> int:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench/instructions.py: valgrind is missing (apt-get install valgrind)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_dir}/cg.%p",
        ]
        async with processes(choose_pinning()) as procs:
            _, upstream_port = await start_upstream(procs)
            env = {"PYTHONHASHSEED": "0"}
            cortex = await start_cortex(
                procs, upstream_port, kind, python=(*valgrind, sys.executable), env=env
            )
            pid = cortex.proc.pid
            subprocess.run(
                ["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True
            )
            figures: dict[str, int] = {}
            for load in loads(requests):
                if only is None or load.name == only:
                    figures[load.name] = await measure(load, cortex.port, pid, out_dir, dialect)
                    print(f"{load.name}: {figures[load.name]:,} instructions", flush=True)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for dump in out_dir.glob("cg.*"):
                    shutil.copy(dump, keep / dump.name)
    source = os.environ.get("PYTHONPATH", "this checkout")
    print(f"\nCórtex from {source}, {dialect} client, {kind} upstream")
    per_request = {}
    for load in loads(requests):
        if load.name in figures and load.name != "paced":
            per_request[load.name] = figures[load.name] / load.requests
            print(f"{load.name:>6}: {per_request[load.name] / 1e6:8.3f} M instructions a request")
    if "paced" in figures:
        paced = next(load for load in loads(requests) if load.name == "paced")
        overhead = per_request.get("c1", 0) * paced.requests
        per_token = (figures["paced"] - overhead) / (paced.requests * paced.tokens)
        print(f" paced: {per_token / 1e3:8.1f} k instructions a token (c1's per request taken off)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--kind", choices=["ollama", "openai"], default="ollama")
    parser.add_argument("--only", choices=["c1", "c64", "paced"])
    parser.add_argument("--dialect", choices=["ollama", "openai"], default="ollama")
    parser.add_argument("--keep", type=Path, help="copy callgrind's dumps here")
    args = parser.parse_args()
    sys.exit(run(main(args.requests, args.kind, args.only, args.keep, args.dialect)))
