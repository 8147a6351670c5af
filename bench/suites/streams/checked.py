"""One stream whose every token must arrive, in order, before its done line."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from harness.loadgen import ChatRequest, Result, StreamConnection


class CheckedStream(StreamConnection):
    """A stream whose every token must arrive, in order, before the done line."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = 0
        self.problem = ""
        self.first_token = 0.0
        self.last_token = 0.0
        self._line = b""

    def _body(self, data: bytes, now: float) -> None:
        lines = (self._line + data).split(b"\n")
        self._line = lines.pop()
        for line in lines:
            self._check(line, now)
        super()._body(data, now)

    def _check(self, line: bytes, now: float) -> None:
        if self.problem:
            return
        if b'"error"' in line:
            self.problem = f"error line: {line[:200]!r}"
        elif b'"done":true' in line:
            return
        elif b'"content":"tok%d "' % self.tokens in line:
            self.tokens += 1
            self.first_token = self.first_token or now
            self.last_token = now
        else:
            self.problem = f"token {self.tokens} expected, got {line[:200]!r}"

    def start(self, request: ChatRequest) -> asyncio.Future[Result]:
        """Send the request; its result, and the ``started`` future set by the first message."""
        loop = asyncio.get_running_loop()
        self._want, self._enough = 1, loop.create_future()
        return self._send(request)

    @property
    def started(self) -> asyncio.Future[None]:
        assert self._enough is not None
        return self._enough


@dataclass(frozen=True)
class Stream:
    result: Result
    tokens: int
    problem: str
    token_rate: float  # tokens per second between its first and last token


def judged(conn: CheckedStream, result: Result, tokens: int) -> Stream:
    problem = result.error or conn.problem
    if not problem and conn.tokens != tokens:
        problem = f"{conn.tokens} tokens of {tokens}"
    span = conn.last_token - conn.first_token
    rate = (conn.tokens - 1) / span if span > 0 else 0.0
    return Stream(result, conn.tokens, problem, rate)
