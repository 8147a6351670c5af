"""The machine a run is on, and where the ``cortex`` it measures comes from."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent  # bench/
ROOT = HERE.parent
HOST = "127.0.0.1"


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
    src/ has uncommitted changes), or the directory it is imported from (another
    checkout's, put first with ``PYTHONPATH``)."""
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
