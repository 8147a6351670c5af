"""Memory (RSS, PSS, USS from /proc/PID/smaps_rollup) and open files of processes."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Memory:
    rss: int
    pss: int
    uss: int
    fds: int

    def minus(self, other: Memory) -> Memory:
        return Memory(
            self.rss - other.rss, self.pss - other.pss, self.uss - other.uss, self.fds - other.fds
        )


def memory_of(pids: list[int]) -> Memory:
    """The processes' memory and open files, summed; those that are gone count as none."""
    rss = pss = uss = fds = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _smaps_rollup(pid)
            rss += fields.get("Rss", 0)
            pss += fields.get("Pss", 0)
            uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
            fds += len(os.listdir(f"/proc/{pid}/fd"))
    return Memory(rss, pss, uss, fds)


def _smaps_rollup(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"
