"""CPU seconds: of processes (and their threads and children), and of the whole machine."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HAS_SCHEDSTAT = os.path.exists("/proc/self/schedstat")
T = TypeVar("T")


# ---- processes --------------------------------------------------------------------------------


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


# ---- the machine ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Snapshot:
    """The machine's CPU seconds so far, and those of the benchmark's process tree (this
    process and every subprocess still running): for the share of the machine others used
    over a stretch in which the subprocesses run on."""

    clock: CpuClock
    tree: float
    at: float

    @classmethod
    def now(cls) -> Snapshot:
        tree = cpu_of(family(os.getpid()))
        return cls(CpuClock.now(), tree, time.monotonic())

    def others_since(self, start: Snapshot) -> dict[str, float]:
        """Shares of the machine's CPU used by processes not the benchmark's, and stolen."""
        capacity = (self.at - start.at) * (os.cpu_count() or 1)
        busy = self.clock.machine_busy - start.clock.machine_busy
        others = busy - (self.tree - start.tree)
        steal = self.clock.steal - start.clock.steal
        return {"others": max(others, 0) / capacity, "steal": steal / capacity}
