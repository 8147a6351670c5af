"""Which Ollama servers a model-management call goes to (pull, create, copy, delete, push).

Only Ollama servers manage models. A model's *holders* are those that list it.
``pull_to`` says where a new model goes: ``"routed"``, the one server the router
would send the model to (a holder, else the allowed server with the fewest models,
then the least busy); ``"all"``, every Ollama server; or one backend by name.
"""

from __future__ import annotations

import time

from ..errors import BadRequest, CortexError
from ..modelname import pick
from .member import Member


def managers(members: list[Member]) -> list[Member]:
    """The backends that are Ollama servers."""
    return [m for m in members if m.backend.manages_models]


def holders(members: list[Member], model: str) -> list[Member]:
    """The Ollama servers that list ``model`` (as of their last check)."""
    return [
        m
        for m in managers(members)
        if m.models is not None and pick((e.name for e in m.models), model) is not None
    ]


def destinations(members: list[Member], model: str | None, pull_to: str) -> list[Member]:
    """Where a new ``model`` goes by ``pull_to`` (None: a blob, for whichever model)."""
    servers = managers(members)
    if not servers:
        raise BadRequest("no backend is an Ollama server; models cannot be pulled or created")
    if pull_to == "all" or (pull_to == "routed" and model is None):
        return servers
    if pull_to != "routed":
        named = [m for m in servers if m.name == pull_to]
        if not named:
            raise BadRequest(f'pull_to names backend "{pull_to}", which is not an Ollama server')
        return named
    assert model is not None
    allowed = [m for m in servers if m.config.models is None or pick(m.config.models, model)]
    if not allowed:
        raise CortexError(f'no Ollama backend may serve "{model}" (its models setting)', status=403)
    return [routed(allowed, model)]


def routed(servers: list[Member], model: str) -> Member:
    """The server the router would send ``model`` to: a healthy holder, else a healthy server
    with the fewest models; the least busy among equals."""
    now = time.monotonic()
    healthy = [m for m in servers if m.admits(model, now)] or servers
    held = holders(healthy, model)
    pool = held or healthy
    return min(pool, key=lambda m: (0 if held else len(m.models or []), m.load()))
