"""The benchmark's machinery: the machine, CPU pinning, subprocesses and CPU accounting."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HAS_SCHEDSTAT = os.path.exists("/proc/self/schedstat")
T = TypeVar("T")


# ---- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or "unknown",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
        "cortex_source": cortex_source(),
    }


def cortex_source() -> str:
    """Where the ``cortex`` package comes from: this checkout's commit (and whether
    src/ has uncommitted changes), or the directory it is imported from."""
    spec = importlib.util.find_spec("cortex")
    origin = Path(spec.origin).resolve().parent if spec and spec.origin else None
    if origin is None:
        return "nowhere: cortex is not importable"
    if not origin.is_relative_to(ROOT / "src"):
        return str(origin)
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return str(origin)
    return commit + (" + uncommitted changes in src/" if dirty else "")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds so far: the whole machine's (busy and stolen by the hypervisor), and
    this process's plus its finished children's."""

    machine_busy: float
    steal: float
    ours: float

    @classmethod
    def now(cls) -> CpuClock:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        busy = (user + nice + system + irq + softirq) / CLOCK_TICKS
        return cls(busy, steal / CLOCK_TICKS, ours)

    def others_since(self, start: CpuClock, wall: float, running: float = 0.0) -> dict[str, float]:
        """Shares of the machine's CPU capacity that other processes used, and that the
        hypervisor stole, since ``start``. Children count as ours once waited for; those
        still running count through ``running``, their CPU seconds since ``start``."""
        capacity = wall * (os.cpu_count() or 1)
        ours = self.ours - start.ours + running
        others = (self.machine_busy - start.machine_busy) - ours
        return {"others": max(others, 0) / capacity, "steal": (self.steal - start.steal) / capacity}


# ---- pinning and subprocesses ---------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    cortex: set[int] | None
    load: set[int] | None
    how: str

    def describe(self) -> str:
        if self.cortex is None or self.load is None:
            return f"not pinned ({self.how})"
        return (
            f"Córtex on CPU {cpu_list(self.cortex)}; "
            f"upstream + load generator on CPU {cpu_list(self.load)} ({self.how})"
        )

    def pin_load_generator(self) -> None:
        """Move this process, the load generator, to the load side's CPU."""
        if self.load is not None:
            os.sched_setaffinity(0, self.load)


def cpu_list(cpus: set[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def choose_pinning() -> Pinning:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Pinning(None, None, "fewer than 2 CPUs")
    how = "taskset" if shutil.which("taskset") else "sched_setaffinity"
    return Pinning({allowed[0]}, {allowed[1]}, how)


class Processes:
    """Subprocesses started for the benchmark, and their log files; all go on the way out."""

    def __init__(self, pinning: Pinning) -> None:
        self.pinning = pinning
        self._procs: list[asyncio.subprocess.Process] = []
        self._files = contextlib.ExitStack()

    def log_file(self) -> IO[bytes]:
        return self._files.enter_context(tempfile.TemporaryFile())

    async def spawn(
        self, argv: Sequence[str], cpus: set[int] | None, output: int | IO[bytes]
    ) -> asyncio.subprocess.Process:
        command = list(argv)
        pin: Callable[[], None] | None = None
        if cpus is not None and self.pinning.how == "taskset":
            command = ["taskset", "-c", cpu_list(cpus), *command]
        elif cpus is not None:

            def pin() -> None:
                os.sched_setaffinity(0, cpus)

        proc = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, preexec_fn=pin
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


async def start_upstream(procs: Processes) -> tuple[asyncio.subprocess.Process, int]:
    """Start bench/fake_upstream.py beside the load generator; the process and its port."""
    argv = [sys.executable, str(HERE / "fake_upstream.py")]
    proc = await procs.spawn(argv, procs.pinning.load, asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    if not line.startswith(b"http://"):
        raise RuntimeError(f"the fake upstream did not start: {line!r}")
    return proc, int(line.rsplit(b":", 1)[1])


@dataclass
class Cortex:
    """A ``cortex serve`` subprocess; its output goes to a temporary file."""

    proc: asyncio.subprocess.Process
    port: int
    log: IO[bytes]

    def log_lines(self) -> list[str]:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").splitlines()


async def start_cortex(
    procs: Processes,
    upstream_port: int,
    kind: str = "ollama",
    extra: Sequence[str] = (),
    python: Sequence[str] = (sys.executable,),
) -> Cortex:
    """Córtex relaying to the fake upstream in its ``kind`` dialect (ollama or openai);
    ``extra`` are more ``cortex serve`` arguments (e.g. ``--config FILE``), ``python`` the
    command that runs it."""
    port = free_port()
    upstream = f"http://{HOST}:{upstream_port}"
    if kind != "ollama":
        upstream = f"{kind}+{upstream}"  # Córtex then calls {upstream}/v1/chat/completions
    argv = [*python, "-m", "cortex", "serve", "--port", str(port)]
    argv += ["--upstream", upstream, "--default-model", "bench"]
    argv += ["--log-level", "warning", *extra]
    return await start_gateway(procs, argv, port)


async def start_gateway(procs: Processes, argv: Sequence[str], port: int) -> Cortex:
    """A relay (Córtex or another) on Córtex's CPU, once it listens on ``port``."""
    log = procs.log_file()
    gateway = Cortex(await procs.spawn(argv, procs.pinning.cortex, log), port, log)
    await wait_listening(gateway)
    return gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def wait_listening(cortex: Cortex, attempts: int = 600) -> None:
    """Wait until Córtex accepts connections (up to 30 s), or fail with its log."""
    for _ in range(attempts):
        if cortex.proc.returncode is not None:
            break
        if await accepts(cortex.port):
            return
        await asyncio.sleep(0.05)
    tail = "\n".join(cortex.log_lines()[-20:])
    raise RuntimeError(f"Córtex did not start listening on port {cortex.port}:\n{tail}")


async def accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return False
    writer.close()
    return True


# ---- CPU accounting -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of a process's threads, in nanoseconds from /proc/PID/task/*/schedstat.

    utime + stime (``/proc/PID/stat``) come in clock ticks of 10 ms: over a load that
    costs nginx 150 ms, one tick is 7%. They are the fallback where the kernel keeps
    no schedstat."""
    if not HAS_SCHEDSTAT:
        return sum(user_and_system(pid))
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def user_and_system(pid: int) -> tuple[float, float]:
    """utime and stime of a process, all its threads, in seconds (10 ms ticks)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_of(pids: Iterable[int]) -> float:
    """CPU seconds of the processes, those that are gone counted as none."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def runnable_seconds(pid: int) -> float:
    """Seconds the process's threads spent ready to run but waiting for a CPU."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def family(pid: int) -> list[int]:
    """A process and all its descendants (nginx's master and its worker, say)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    found = [pid]
    for parent in found:
        found += [child for child, ppid in parents.items() if ppid == parent]
    return found


def usage(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    return {name: (cpu_seconds(pid), runnable_seconds(pid)) for name, pid in pids.items()}


async def measured(pids: dict[str, int], work: Awaitable[T]) -> tuple[T, dict[str, Any]]:
    """Await ``work``; also return, per process, the CPU seconds used and the seconds
    spent waiting for a CPU meanwhile."""
    before = usage(pids)
    value = await work
    after = usage(pids)
    used = {
        name: {
            "cpu_s": after[name][0] - before[name][0],
            "wait_s": after[name][1] - before[name][1],
        }
        for name in pids
    }
    return value, used


# ---- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }
