"""One answer from the embedded model's process, read by the relay like any upstream body."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..errors import CortexError
from .frames import WINDOW

CREDIT_BATCH = WINDOW // 4  # lines taken before the child is told it may send that many more


class Answer:
    """An ``UpstreamBody`` fed by the supervisor's reader with the child's lines.

    The child sends at most ``WINDOW`` lines that the relay has not taken;
    ``read`` hands them over and grants more, so a slow client holds the model
    back instead of filling memory.
    """

    def __init__(
        self, job: int, credit: Callable[[int, int], None], cancel: Callable[[int], None]
    ) -> None:
        self.job = job
        self._credit = credit
        self._cancel = cancel
        self._lines: list[bytes] = []
        self._arrived = asyncio.Event()
        self._ended = False
        self._dropped = False
        self._error: CortexError | None = None
        self._taken = 0  # lines taken but not yet granted back
        self.started_at = asyncio.get_running_loop().time()

    def deliver(self, line: bytes) -> None:
        if not self._dropped:
            self._lines.append(line)
            self._arrived.set()

    def finish(self) -> None:
        self._ended = True
        self._arrived.set()

    def fail(self, error: CortexError) -> None:
        if not self._ended:
            self._error = error
            self._arrived.set()

    async def read(self) -> bytes:
        while not self._lines:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        lines, self._lines = self._lines, []
        self._taken += len(lines)
        if self._taken >= CREDIT_BATCH and not self._ended:
            self._credit(self.job, self._taken)
            self._taken = 0
        return b"".join(lines)

    def close(self) -> None:
        """The relay is done with this answer: a child still generating it stops."""
        if not self._ended and self._error is None and not self._dropped:
            self._dropped = True
            self._lines.clear()
            self._cancel(self.job)
