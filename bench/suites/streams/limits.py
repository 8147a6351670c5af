"""Open-file limits and how many Córtex processes a plan needs; the kernel's accept queues."""

from __future__ import annotations

import contextlib
import itertools
import resource
from pathlib import Path

from suites.streams.plan import FD_SPARE, Plan


def raise_open_files(streams: int) -> tuple[int, int]:
    """Enough descriptors for every socket of every process (they inherit the limit); the
    hard limit rises only for a process allowed to (CAP_SYS_RESOURCE)."""
    need = 4 * streams + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, min(need, nr_open))))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(need, hard)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fewest_workers(plan: Plan, limit: int) -> int:
    return next(w for w in range(1, 64) if 2 * plan.streams // w + FD_SPARE <= limit)


def descriptors_short(plan: Plan, limit: int) -> str:
    """Why this plan cannot run under the open-file limit, or nothing: each Córtex process
    holds a client and an upstream socket per stream it serves."""
    per_process = 2 * plan.streams // plan.workers + FD_SPARE
    if per_process <= limit:
        return ""
    fits = (limit - FD_SPARE) // 2 * plan.workers
    return (
        f"{plan.streams} streams need about {per_process} open files per Córtex process, "
        f"over the limit of {limit} (the hard limit, which only a process with "
        f"CAP_SYS_RESOURCE can raise): use --streams {fits} or more --workers"
    )


def listen_drops() -> int:
    """Connections the kernel dropped machine-wide because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    names, values = next(
        (a.split(), b.split())
        for a, b in itertools.pairwise(lines)
        if a.startswith("TcpExt:") and b.startswith("TcpExt:")
    )
    return int(values[names.index("ListenDrops")])


def kernel_settings() -> dict[str, str]:
    names = ["net/core/somaxconn", "net/ipv4/tcp_max_syn_backlog", "net/ipv4/ip_local_port_range"]
    return {name: Path("/proc/sys", name).read_text().strip() for name in names}
