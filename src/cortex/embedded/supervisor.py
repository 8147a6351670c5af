"""The embedded model's process, supervised: started, watched, restarted with backoff.

The child proves itself before it is used: it loads the model and generates
one token (``ready``). When it dies, every answer it was producing ends with an
explicit error at once (a 503 before the first token, the in-band error after)
and a new child is started after a growing pause. A child that fails its
self-test, or dies ``DOWN_AFTER`` times within ``CRASH_WINDOW`` seconds, leaves
the backend ``down`` with the reason, which ``/ready`` and ``/cortex/backends``
show; it is still retried, at the longest pause.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import sys
import time
from collections import deque
from dataclasses import asdict
from typing import Any, Literal

import orjson

from ..backoff import LONGEST_PAUSE, Backoff
from ..errors import ContextTooLong, CortexError, ModelProcessDied, Overloaded
from . import frames
from .answer import Answer
from .worker import WorkerSettings

logger = logging.getLogger("cortex.embedded")
CONTEXT_HINT = "the embedded model's context is set by CORTEX_LOCAL_CONTEXT (local_context)"

State = Literal["starting", "ready", "restarting", "down", "stopped"]

QUEUE_LIMIT = 32  # answers running or waiting in the child
CRASH_WINDOW = 60.0
DOWN_AFTER = 3
READY_WAIT = 60.0  # how long a request waits for a (re)starting child
MAX_FRAME = 16 * 1024 * 1024

SIGNAL_CAUSES: dict[int, str] = {
    signal.SIGILL: "an illegal instruction: this llama.cpp build uses CPU instructions the "
    "machine cannot run; build one for this CPU with CORTEX_LLAMA=compile ./scripts/install "
    "local (README, 'The embedded model')",
    signal.SIGKILL: "killed, often by the kernel when memory runs out",
    signal.SIGSEGV: "a crash in llama.cpp's native code",
    signal.SIGBUS: "a crash in llama.cpp's native code",
    signal.SIGABRT: "llama.cpp aborted",
    signal.SIGFPE: "an arithmetic fault in llama.cpp's native code",
}


class ModelProcess:
    def __init__(self, settings: WorkerSettings) -> None:
        self._settings = settings
        self.state: State = "starting"
        self.reason: str | None = None  # why the child is not ready, when it is not
        self.pid: int | None = None
        self.system_info = ""  # llama.cpp's CPU features, as the child reports them
        self.tokens_generated = 0
        self.lines_received = 0
        self.restarts = 0
        self._answers: dict[int, Answer] = {}
        self._ids = itertools.count(1)
        self._child: asyncio.subprocess.Process | None = None
        self._settled = asyncio.Event()  # set while ready or down; clear while (re)starting
        self._ready_since = 0.0
        self._failed: str | None = None  # the child's own word on why it could not load
        self._stderr: deque[str] = deque(maxlen=20)
        self._crashes: deque[float] = deque()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the child and wait for its self-test (or its failure)."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="cortex-embedded")
        await self._settled.wait()

    @property
    def busy(self) -> bool:
        """An answer is running or waiting in the child."""
        return bool(self._answers)

    async def submit(self, path: str, body: dict[str, Any]) -> Answer:
        if not self._settled.is_set():
            try:
                async with asyncio.timeout(READY_WAIT):
                    await self._settled.wait()
            except TimeoutError:
                raise Overloaded("the embedded model is still starting", 5) from None
        if self.state != "ready" or self._child is None or self._child.stdin is None:
            raise Overloaded(f"the embedded model is unavailable: {self.reason}", LONGEST_PAUSE)
        if len(self._answers) >= QUEUE_LIMIT:
            raise Overloaded("the embedded model is busy; try again shortly", 1)
        job = next(self._ids)
        answer = Answer(job, self._credit, self._cancel)
        self._answers[job] = answer
        self._write(frames.command("start", id=job, path=path, body=body, window=frames.WINDOW))
        return answer

    def _credit(self, job: int, lines: int) -> None:
        self._write(frames.command("credit", id=job, n=lines))

    def _cancel(self, job: int) -> None:
        self._write(frames.command("cancel", id=job))

    def _write(self, data: bytes) -> None:
        child = self._child
        if child is not None and child.stdin is not None and not child.stdin.is_closing():
            child.stdin.write(data)  # a dead child's pipe: its answers fail from the reader

    async def _supervise(self) -> None:
        backoff = Backoff()
        while True:
            began = time.monotonic()
            reason = await self._run_child()
            if self.state == "stopped":
                return
            self._fail_answers(ModelProcessDied(f"{reason}; the answer was cut short"))
            now = time.monotonic()
            was_ready = self.state == "ready"
            pause = backoff.after(now - self._ready_since if was_ready else 0.0)
            self.restarts += 1
            self._crashes.append(now)
            while self._crashes and now - self._crashes[0] > CRASH_WINDOW:
                self._crashes.popleft()
            if not was_ready or len(self._crashes) >= DOWN_AFTER:
                self.state, self.reason = "down", reason
                self._settled.set()
                logger.error("the embedded model is down: %s (next try in %g s)", reason, pause)
            else:
                self.state, self.reason = "restarting", reason
                self._settled.clear()
                logger.warning(
                    "the embedded model's process died after %.0f s: %s; restarting",
                    now - began,
                    reason,
                )
            for line in self._stderr:
                logger.info("embedded model stderr: %s", line)
            await asyncio.sleep(pause)

    async def _run_child(self) -> str:
        """Run one child until it exits; why it exited."""
        self._failed = None
        self._stderr.clear()
        try:
            child = self._child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cortex.embedded.worker",
                orjson.dumps(asdict(self._settings)).decode(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=MAX_FRAME,
                start_new_session=True,  # the terminal's Ctrl-C is the gateway's to handle
            )
        except OSError as exc:
            return f"the embedded model's process could not start: {exc.strerror}"
        self.pid = child.pid
        assert child.stdout is not None and child.stderr is not None
        stderr = asyncio.create_task(self._read_stderr(child.stderr))
        try:
            while frame := await child.stdout.readline():
                self._take(frame)
        except (ValueError, orjson.JSONDecodeError):  # a frame too long, or not one at all
            child.kill()
            self._failed = "the embedded model's process broke the protocol"
        code = await child.wait()
        await stderr
        return self._failed or _describe_exit(code, self._stderr)

    def _take(self, frame: bytes) -> None:
        if frame.startswith(frames.EVENT_PREFIX):
            self._on_event(orjson.loads(frame[len(frames.EVENT_PREFIX) :]))
            return
        self.lines_received += 1
        job, _, line = frame.partition(b" ")
        answer = self._answers.get(int(job))
        if answer is not None:
            answer.deliver(line)

    def _on_event(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if name == "end":
            self.tokens_generated += event["tokens"]
            answer = self._answers.pop(event["id"], None)
            if answer is not None:
                answer.finish()
        elif name == "refused":
            answer = self._answers.get(event["id"])
            if answer is not None:
                answer.fail(ContextTooLong(f"{event['error']} ({CONTEXT_HINT})"))
        elif name == "ready":
            self.state, self.reason = "ready", None
            self._ready_since = time.monotonic()
            self.system_info = event["system"]
            self._settled.set()
            logger.info(
                "the embedded model is ready (loaded in %d ms; llama.cpp: %s)",
                event["load_ms"],
                self.system_info,
            )
        elif name == "failed":
            self._failed = event["error"]

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr.append(text)
                logger.debug("embedded model stderr: %s", text)

    def _fail_answers(self, error: CortexError) -> None:
        answers, self._answers = self._answers, {}
        for answer in answers.values():
            answer.fail(error)

    async def close(self) -> None:
        self.state = "stopped"
        child = self._child
        if child is not None and child.returncode is None:
            if child.stdin is not None:
                child.stdin.close()  # the child exits when its commands end
            try:
                async with asyncio.timeout(2):
                    await child.wait()
            except TimeoutError:
                child.kill()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        self._fail_answers(ModelProcessDied("Córtex is shutting down; the answer was cut short"))


def _describe_exit(code: int, stderr: deque[str]) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        cause = SIGNAL_CAUSES.get(-code, "stopped by a signal")
        return f"the embedded model's process died of {name} ({cause})"
    last = f": {stderr[-1]}" if stderr else ""
    return f"the embedded model's process exited with status {code}{last}"
