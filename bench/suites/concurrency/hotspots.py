"""Where Córtex's time goes at concurrency 64: py-spy on the one-worker Córtex during the
sweep's load, the samples charged to the innermost frame (a function's own time) and to
the parts bench/profile.py names."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from harness.machine import HERE

from suites.concurrency.plan import Plan
from suites.concurrency.sweep import Level, level
from suites.concurrency.targets import Target


def _profile_module() -> Any:
    """bench/profile.py (its name is the standard library's too: load it by path)."""
    spec = importlib.util.spec_from_file_location("bench_profile", HERE / "profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaves(raw: str, top: int = 15) -> list[tuple[str, float]]:
    """The innermost frames with the most samples (a frame as py-spy names it, the path
    cut to what follows site-packages/ or src/), and their share of all samples."""
    own: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frame = stack.rsplit(";", 1)[-1]
            for cut in ("site-packages/", "/src/", "/lib/python3"):
                if cut in frame:
                    name, _, path = frame.partition(" (")
                    frame = f"{name} ({path.split(cut, 1)[1]}"
                    break
            own[frame] += int(count)
    total = sum(own.values()) or 1
    return [(frame, n / total) for frame, n in own.most_common(top)]


async def hotspots(target: Target, plan: Plan, load_side: list[int]) -> dict[str, Any]:
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if spy is None or target.server is None:
        return {"error": "py-spy is missing (the bench extra)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.txt"
        argv = [spy, "record", "--pid", str(target.server.proc.pid), "--rate", "500"]
        argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
        sampler = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        await asyncio.sleep(1)  # py-spy attaches
        runs = max(
            1,
            round(
                plan.profile_seconds
                / (plan.tokens * plan.delay_ms / 1e3 * plan.requests_per_stream)
            ),
        )
        for _ in range(runs):
            await level(target, plan, 64, load_side, Level())
        sampler.send_signal(signal.SIGINT)
        _, errors = await sampler.communicate()
        if not out.exists():
            return {"error": f"py-spy failed: {errors.decode(errors='replace')[-500:]}"}
        raw = out.read_text()
    parts = _profile_module().shares(raw)
    total = sum(parts.values()) or 1
    return {
        "target": target.name,
        "parts": [(part, n / total) for part, n in parts.most_common()],
        "leaves": leaves(raw),
        "samples": total,
    }
