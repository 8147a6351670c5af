"""The current request's ticket: the key it came with, and what that key may use and see.

``keyguard.py`` admits a request and sets its ticket; the layers below only ask it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from ..config import KeyRecord
from ..errors import ModelNotAllowed


@dataclass(slots=True)
class Ticket:
    key: KeyRecord
    lease: str | None = None  # the concurrency slot held, if the key has that limit
    model: str | None = None
    limited: bool = True  # False on /cortex/* and /metrics: the key is checked, nothing counted


TICKET: ContextVar[Ticket | None] = ContextVar("cortex_ticket", default=None)


def allow_model(model: str) -> None:
    """Refuse a model the current request's key may not use (a no-op without keys)."""
    ticket = TICKET.get()
    if ticket is None:
        return
    ticket.model = model
    if not ticket.key.allows(model):
        raise ModelNotAllowed(f"model '{model}' is not allowed for key '{ticket.key.name}'")


def model_filter() -> Callable[[str], bool] | None:
    """Which models the current request's key may see in model lists; None: every one."""
    ticket = TICKET.get()
    if ticket is None or ticket.key.models is None:
        return None
    return ticket.key.allows


def may_see_addresses() -> bool:
    """Backend URLs are shown to admin keys only (with keys off, to nobody)."""
    ticket = TICKET.get()
    return ticket is not None and ticket.key.admin


def party() -> str:
    """Whom the admission queue is fair between: the request's key ("" without keys)."""
    ticket = TICKET.get()
    return "" if ticket is None else ticket.key.name
