"""One request's context, handed down every layer that needs it: no context variables.

The pipeline (``app.py``) makes it for each HTTP request: the ``record`` the
access log and metrics report, filled in along the way, and once the request is
admitted its ``ticket``: the API key and what that key may use and see; with
OpenTelemetry on, its ``trace``.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .access.ticket import Ticket
from .errors import ModelNotAllowed
from .observe import RequestRecord
from .telemetry import RequestTrace

NO_KEY = "-"  # the owner of what a request makes with keys off


@dataclass(slots=True)
class RequestContext:
    record: RequestRecord
    ticket: Ticket | None = None
    alias: str | None = None  # the name the client asked for, when it was an alias
    trace: RequestTrace | None = None  # its OpenTelemetry spans, when telemetry is on

    def allow_model(self, model: str) -> None:
        """Refuse a model the request's key may not use (a no-op without keys); a key that
        allows the alias it was asked by allows it too."""
        ticket = self.ticket
        if ticket is None:
            return
        ticket.model = model
        names = (model,) if self.alias is None else (model, self.alias)
        if not any(ticket.key.allows(name) for name in names):
            ticket.refused = True  # it counts toward nothing (keyguard's finish)
            raise ModelNotAllowed(f"model '{model}' is not allowed for key '{ticket.key.name}'")

    def visible(self) -> Callable[[str], bool] | None:
        """Which models the key may see in model lists; None: every one."""
        ticket = self.ticket
        if ticket is None or ticket.key.models is None:
            return None
        return ticket.key.allows

    @property
    def admin(self) -> bool:
        """The key may see backend URLs and every key's usage (with keys off, nobody is)."""
        return self.ticket is not None and self.ticket.key.admin

    @property
    def owner(self) -> str:
        """Whose the request is: the key's name, for fair queueing and stored responses."""
        return NO_KEY if self.ticket is None else self.ticket.key.name

    @property
    def party(self) -> str:
        """Whom the admission queue is fair between ("" without keys)."""
        return "" if self.ticket is None else self.ticket.key.name


def context(request: Request) -> RequestContext:
    """The context the pipeline made for this request."""
    made: RequestContext = request.scope["state"]["context"]
    return made


def attach(scope: MutableMapping[str, Any], made: RequestContext) -> None:
    scope.setdefault("state", {})["context"] = made
