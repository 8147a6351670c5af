"""A benchmark's command line (``--quick``) and how its main coroutine runs."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

P = TypeVar("P")
T = TypeVar("T")


def parser(doc: str | None, quick: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first line, and ``--quick``."""
    out = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    out.add_argument("--quick", action="store_true", help=quick)
    return out


def quick_or_full(quick: bool, full: P, small: P) -> tuple[P, str]:
    """The plan a run follows, and its mode as the header and the JSON name it."""
    return (small, "quick") if quick else (full, "full")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (as it is for Córtex), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def run_benchmark(main: Coroutine[Any, Any, int], stopped: str) -> NoReturn:
    """Run ``main`` (on uvloop, as Córtex runs) and exit with its code; interrupted, say
    that ``stopped`` were stopped and exit 130."""
    try:
        sys.exit(run(main))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"interrupted; {stopped} were stopped", file=sys.stderr)
        sys.exit(130)


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the running task, so the subprocesses are stopped on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
