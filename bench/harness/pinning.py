"""Which CPU the relays run on, and which the fake upstream and the load generator share."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Pinning:
    cortex: set[int] | None  # the relays' CPU (Córtex, nginx, …): one is loaded at a time
    load: set[int] | None  # the upstream's and the load generator's
    how: str

    def describe(self, relays: str = "Córtex") -> str:
        if self.cortex is None or self.load is None:
            return f"not pinned ({self.how})"
        return (
            f"{relays} on CPU {cpu_list(self.cortex)}; "
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
