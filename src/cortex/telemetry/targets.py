"""What every upstream attempt of one operation, on one model at one model server,
shares: its *target*, the key its CLIENT span's name and GenAI attributes and its
histogram series are kept by, in the exporter's thread. Found once per attempt by one
dictionary lookup (``targets[key]``), so that a request builds no attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from .genai import provider
from .histograms import Histogram

MAX_TARGETS = 4096  # operations × models × servers; past it the cache starts again
# A target: ((operation, provider, model),) for the embedded model, else with the
# model server's host and port after it.
Target = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Instruments:
    operation_duration: Histogram
    token_usage: Histogram
    request_duration: Histogram
    time_to_first_token: Histogram
    time_per_output_token: Histogram

    def all(self) -> Iterator[Histogram]:
        for field in fields(self):
            yield getattr(self, field.name)


def genai_attributes(server_key: tuple[str, str, str], provider_key: str) -> dict[str, Any]:
    """The GenAI attributes every span and measurement of a target has."""
    operation, name, model = server_key
    return {"gen_ai.operation.name": operation, provider_key: name, "gen_ai.request.model": model}


def address_attributes(target: Target) -> dict[str, Any]:
    """The model server's address, from a target (none: the embedded model)."""
    if len(target) == 3:
        return {"server.address": target[1], "server.port": target[2]}
    return {}


class Targets(dict[tuple[str, Any, str], Target]):
    """The target of an attempt, by (operation, backend, model sent): ``targets[key]``
    is one dictionary lookup (the backend object hashed by identity), and the same
    tuple each time, so that the thread's caches keyed by it find it at once."""

    def __missing__(self, key: tuple[str, Any, str]) -> Target:
        if len(self) >= MAX_TARGETS:
            self.clear()
        operation, backend, model = key
        host = getattr(backend, "host", None)  # an HTTP backend names its host
        if host is None:  # the embedded model
            found: Target = ((operation, provider(None), model),)
        else:
            found = ((operation, provider(backend.wire.kind), model), host, backend.port)
        self[key] = found
        return found
