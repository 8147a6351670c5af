"""Where Córtex spends the CPU of a short request, by part (issue #17).

    .venv/bin/python bench/profile.py [--requests N] [--kind ollama|openai] [--tokens T]

Starts the fake upstream and ``cortex serve`` as bench/compare.py does, sends N
streamed 10-token chats one after another, and samples Córtex meanwhile with
py-spy (the ``bench`` extra; it attaches with ptrace, so it needs root or
``kernel.yama.ptrace_scope=0``). Each sample is charged to the innermost frame of
a known part, so C functions count with their Python caller; a sample with no
Python frame below the event loop's is the loop's own C code (uvloop, libuv) and
the system calls it makes. Prints each part's
share of the samples and that share of the measured CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

from harness.cpu import cpu_of, family, user_and_system
from harness.loadgen import chat_request, checked, run_load
from harness.loads import warm_up
from harness.machine import HOST
from harness.pinning import choose_pinning
from harness.processes import processes
from harness.servers import start_cortex, start_upstream

# (part, path fragments of its frames); the first part that matches a frame wins
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("the request id (uuid4)", ("/uuid.py",)),
    ("metrics and the access log", ("cortex/observe/", "prometheus_client/", "/logging/")),
    ("keys and limits", ("cortex/access/keyguard", "cortex/access/limits", "cortex/access/keys")),
    ("host guard, CORS and dispatch", ("cortex/app.py", "cortex/access/", "starlette/")),
    ("reading and validating the body", ("cortex/api/body", "cortex/api/fields", "pydantic")),
    ("routing", ("cortex/routing/",)),
    ("the response", ("cortex/stream/response",)),
    ("the relay (splice, lines, translators)", ("cortex/stream/", "cortex/dialects/")),
    ("the upstream client", ("cortex/backends/h1", "cortex/backends/pool", "cortex/backends/http")),
    ("uvicorn's HTTP protocol, with protocol.py", ("uvicorn/", "cortex/protocol")),
    ("the handler", ("cortex/api/", "cortex/backends/", "cortex/")),
    ("the event loop's C code and system calls", ("Runner.run (",)),
    ("asyncio's Python (timeouts, context managers)", ("asyncio/", "contextlib")),
]


def part_of(stack: str) -> str:
    """The part of one collapsed py-spy stack (outermost frame first)."""
    for frame in reversed(stack.split(";")):
        for part, fragments in PARTS:
            if any(fragment in frame for fragment in fragments):
                return part
    return "other"


def user_seconds(pids: list[int]) -> float:
    """utime alone (CPU time outside the kernel) of the processes."""
    return sum(user_and_system(pid)[0] for pid in pids)


def shares(raw: str) -> Counter[str]:
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[part_of(stack)] += int(count)
    return samples


async def profile(requests: int, kind: str, tokens: int) -> int:
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if spy is None:
        print("bench/profile.py: py-spy is missing: .venv/bin/pip install -e '.[bench]'")
        return 1
    async with processes(choose_pinning()) as procs:
        _, upstream_port = await start_upstream(procs)
        cortex = await start_cortex(procs, upstream_port, kind)
        request = chat_request(HOST, cortex.port, tokens, dialect="ollama")
        await warm_up(cortex.port, request, 300, 1, "Córtex")
        pids = family(cortex.proc.pid)
        before, user_before = cpu_of(pids), user_seconds(pids)
        checked((await run_load(HOST, cortex.port, request, requests, 1))[0], "measured")
        cpu = (cpu_of(pids) - before) / requests
        user = (user_seconds(pids) - user_before) / requests
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "samples.txt"
            argv = [spy, "record", "--pid", str(cortex.proc.pid), "--rate", "1000"]
            sampler = await asyncio.create_subprocess_exec(
                *argv,
                "--format",
                "raw",
                "--output",
                str(out),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(1)  # py-spy attaches
            checked((await run_load(HOST, cortex.port, request, requests, 1))[0], "profiled")
            sampler.send_signal(signal.SIGINT)
            _, errors = await sampler.communicate()
            if not out.exists():
                print(f"bench/profile.py: py-spy failed: {errors.decode(errors='replace')}")
                return 1
            samples = shares(out.read_text())
    total = sum(samples.values())
    print(f"Córtex, {kind} upstream: {requests} requests x {tokens} tokens at concurrency 1")
    print(f"CPU per request, unprofiled: {cpu * 1e3:.3f} ms ({user * 1e3:.3f} ms in the process,")
    print(f"{(cpu - user) * 1e3:.3f} ms in the kernel on its behalf)")
    print(
        f"shares of {total} py-spy samples (which stop the process to read it), scaled to that:\n"
    )
    print(f"{'part':<47}{'share':>6}{'about':>10}")
    for part, count in samples.most_common():
        share = count / total
        print(f"{part:<47}{share:>6.0%}{share * cpu * 1e6:>7.0f} µs")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--kind", choices=["ollama", "openai"], default="ollama")
    parser.add_argument("--tokens", type=int, default=10)
    args = parser.parse_args()
    sys.exit(asyncio.run(profile(args.requests, args.kind, args.tokens)))


if __name__ == "__main__":
    main()
