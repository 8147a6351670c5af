"""A request's ticket: the key it came with, once ``keyguard.Access`` admitted it."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import KeyRecord


@dataclass(slots=True)
class Ticket:
    key: KeyRecord
    lease: str | None = None  # the concurrency slot held, if the key has that limit
    model: str | None = None
    limited: bool = True  # False on /cortex/* and /metrics: the key is checked, nothing counted
    request: str = ""  # how the limits counted it, to uncount it if it is refused after all
    refused: bool = False  # a model the key may not use: the request counts toward nothing
