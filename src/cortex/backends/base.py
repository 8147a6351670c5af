"""What the relay needs from an upstream: a body it can read chunk by chunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The phases of one upstream exchange, in seconds."""

    connect: float
    first_byte: float
    idle: float


class UpstreamBody(Protocol):
    """An open upstream response whose status was already checked.

    ``read`` returns the next chunk as it arrived from the network, ``b""`` at
    the end, and raises an ``UpstreamError`` if the connection breaks.
    """

    @property
    def started_at(self) -> float:
        """Event-loop time at which the request was sent."""
        ...

    async def read(self) -> bytes: ...
