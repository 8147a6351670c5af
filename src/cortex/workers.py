"""``--workers N`` on Linux: N processes, each listening on its own socket.

uvicorn's supervisor hands every worker the parent's one listening socket, and which
worker accepts a connection is a race: under load one worker took 85–95% of a burst of
64 kept-alive connections. Here each worker binds its own socket to the address with
SO_REUSEPORT, and the kernel spreads new connections across the sockets (by a hash of
each connection's addresses and ports). The supervisor holds the address bound but
never listens (see ``listening.reserve``); it forwards SIGTERM and SIGINT to the
workers, each of which drains as a single process does, starts another worker when one
dies unexpectedly (after a pause that doubles while they keep dying), and returns once
every worker has exited after a stop. A worker whose supervisor dies without a word
(SIGKILL, the OOM killer) is sent SIGTERM by the kernel and drains (``follow_parent``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

from .backoff import Backoff

logger = logging.getLogger("cortex")
spawn = multiprocessing.get_context("spawn")

# A worker's main function, in a module its process imports: it is given the arguments
# the supervisor was given, then the end of a pipe on which it says once it has started.
WorkerMain = Callable[..., None]

KILL_AFTER_DRAIN = 10.0  # a worker still running this long after its drain is killed
LONGEST_WAIT = 1.0  # the supervisor looks at its workers at least this often


@dataclass
class Slot:
    """One of the N workers, through its successive processes."""

    number: int
    process: SpawnProcess | None = None
    started_pipe: Connection | None = None  # the supervisor's end, until the worker speaks
    began: float = 0.0
    start_at: float | None = None  # when to start it again, after a death
    backoff: Backoff = field(default_factory=Backoff)


class Supervisor:
    def __init__(
        self, count: int, main: WorkerMain, args: tuple[Any, ...], drain_timeout: float
    ) -> None:
        self.slots = [Slot(n) for n in range(1, count + 1)]
        self.main = main
        self.args = args
        self.drain_timeout = drain_timeout
        self.stop_deadline: float | None = None
        self.any_started = False

    def run(self) -> bool:
        """Until every worker has exited after a stop; False if none could start."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            for slot in self.slots:
                self._start(slot)
            return self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> bool:
        while True:
            running = [s for s in self.slots if s.process is not None]
            if self.stop_deadline is not None and not running:
                return self.any_started
            waiting: list[Any] = [s.process.sentinel for s in running if s.process]
            waiting += [s.started_pipe for s in running if s.started_pipe is not None]
            wait(waiting, timeout=self._next_wake())
            for slot in running:
                self._look_at(slot)
            if self.stop_deadline is None:
                self._restart_due()
            elif time.monotonic() > self.stop_deadline:
                self._kill_all()

    def _look_at(self, slot: Slot) -> None:
        process, pipe = slot.process, slot.started_pipe
        assert process is not None
        if pipe is not None and pipe.poll():
            self._heard_from(slot, pipe)
        if process.is_alive():
            return
        process.join()
        slot.process = None
        if slot.started_pipe is not None:
            slot.started_pipe.close()
            slot.started_pipe = None
            if not self.any_started and self.stop_deadline is None:
                logger.error(
                    "worker %d exited (%s) before it started: stopping", slot.number, _how(process)
                )
                self.stop()
                return
        if self.stop_deadline is not None:
            return
        pause = slot.backoff.after(time.monotonic() - slot.began)
        slot.start_at = time.monotonic() + pause
        logger.error(
            "worker %d (pid %s) exited unexpectedly (%s); another starts in %.1f s",
            slot.number,
            process.pid,
            _how(process),
            pause,
        )

    def _heard_from(self, slot: Slot, pipe: Connection) -> None:
        try:
            pipe.recv_bytes()
        except (EOFError, OSError):
            return  # it exited before it started; its exit says the rest
        pipe.close()
        slot.started_pipe = None
        self.any_started = True
        assert slot.process is not None
        logger.debug("worker %d (pid %s) started", slot.number, slot.process.pid)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.start_at is not None and slot.start_at <= now:
                self._start(slot)

    def _start(self, slot: Slot) -> None:
        ours, theirs = spawn.Pipe(duplex=False)
        process = spawn.Process(
            target=_worker,
            args=(os.getpid(), self.main, *self.args, theirs),
            name=f"cortex-worker-{slot.number}",
        )
        process.start()
        theirs.close()
        slot.process, slot.started_pipe = process, ours
        slot.began, slot.start_at = time.monotonic(), None
        if self.stop_deadline is not None and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)  # the stop came while it was being started

    def _next_wake(self) -> float:
        wakes = [s.start_at for s in self.slots if s.start_at is not None]
        if self.stop_deadline is not None:
            wakes.append(self.stop_deadline)
        soonest = min(wakes, default=time.monotonic() + LONGEST_WAIT)
        return max(0.0, min(LONGEST_WAIT, soonest - time.monotonic()))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_deadline is not None and signum == signal.SIGINT:
            self._signal_all(signal.SIGINT)  # a second Ctrl-C: uvicorn stops without waiting
            return
        self.stop()

    def stop(self) -> None:
        """Every worker drains (SIGTERM, whichever signal came: uvicorn takes a second
        SIGINT, as from the terminal's own Ctrl-C to each worker, as "stop now")."""
        for slot in self.slots:
            slot.start_at = None
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.drain_timeout + KILL_AFTER_DRAIN
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # exited: the loop sees it
                    os.kill(slot.process.pid, signum)

    def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                logger.error("worker %d did not stop after its drain: killed", slot.number)
                slot.process.kill()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _how(process: SpawnProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def follow_parent(parent: int) -> None:
    """Have the kernel send SIGTERM when the parent process dies (Linux), or send it now
    if the parent is already gone; elsewhere, nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(parent: int, main: WorkerMain, *args: Any) -> None:
    follow_parent(parent)
    main(*args)
