"""What every upstream attempt of one operation, on one model at one model server,
shares: its CLIENT span's name and GenAI attributes, and the histogram series its
measurements go to. Found once per attempt by one dictionary lookup
(``Targets.find``), so that a request builds no attributes and looks up no series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from .genai import Conventions, provider
from .histograms import Histogram, Series

MAX_TARGETS = 4096  # operations × models × servers; past it the cache starts again


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


@dataclass(frozen=True, slots=True)
class Target:
    genai: dict[str, Any]  # gen_ai.operation.name, the provider, gen_ai.request.model
    address: dict[str, Any]  # server.address and server.port, or none (the embedded model)
    name: str  # the CLIENT span's: "{operation} {model}"
    # The histograms' series, less error.type: (operation, provider, model) for the
    # server's; that and the server's host and port (if it has one) for the client's.
    server_key: tuple[str, str, str]
    client_key: tuple[Any, ...]
    # The series of an answer that succeeded: request duration, time to first token and
    # per output token (server); operation duration, input and output tokens (client).
    served: tuple[Series, Series, Series] | None
    called: tuple[Series, Series, Series] | None

    def server_attributes(self, failed: str | None) -> dict[str, Any]:
        return self.genai if failed is None else {**self.genai, "error.type": failed}

    def client_attributes(self, failed: str | None, token_type: str = "") -> dict[str, Any]:
        found = {**self.genai, **self.address}
        if token_type:
            found["gen_ai.token.type"] = token_type
        if failed is not None:
            found["error.type"] = failed
        return found


def genai_attributes(server_key: tuple[str, str, str], provider_key: str) -> dict[str, Any]:
    """The GenAI attributes every span and measurement of a target has."""
    operation, name, model = server_key
    return {"gen_ai.operation.name": operation, provider_key: name, "gen_ai.request.model": model}


def address_attributes(client_key: tuple[Any, ...]) -> dict[str, Any]:
    """The model server's address, from a target's ``client_key`` (none: embedded)."""
    if len(client_key) == 3:
        return {"server.address": client_key[1], "server.port": client_key[2]}
    return {}


class Targets:
    def __init__(self, conventions: Conventions, instruments: Instruments | None) -> None:
        self._provider_key = conventions.provider_key
        self._instruments = instruments
        self._found: dict[tuple[Any, ...], Target] = {}

    def find(self, operation: str, backend: Any, model: str) -> Target:
        """The target of an attempt on ``backend`` (an HTTP one names its host; the
        embedded model has none)."""
        host = getattr(backend, "host", None)
        if host is None:
            key: tuple[Any, ...] = (operation, None, model)
        else:
            key = (operation, backend.wire.kind, model, host, backend.port)
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= MAX_TARGETS:
                self._found.clear()
            found = self._found[key] = self._made(operation, key[1], model, backend, host)
        return found

    def _made(
        self, operation: str, kind: str | None, model: str, backend: Any, host: str | None
    ) -> Target:
        server_key = (operation, provider(kind), model)
        client_key = (server_key,) if host is None else (server_key, host, backend.port)
        genai = genai_attributes(server_key, self._provider_key)
        address = address_attributes(client_key)
        target = Target(genai, address, f"{operation} {model}", server_key, client_key, None, None)
        i = self._instruments
        if i is None:
            return target
        served = (
            i.request_duration.series((server_key, None), lambda: genai),
            i.time_to_first_token.series((server_key, None), lambda: genai),
            i.time_per_output_token.series((server_key, None), lambda: genai),
        )
        called = (
            i.operation_duration.series((client_key, None), lambda: target.client_attributes(None)),
            i.token_usage.series(
                ((client_key, None), "input"), lambda: target.client_attributes(None, "input")
            ),
            i.token_usage.series(
                ((client_key, None), "output"), lambda: target.client_attributes(None, "output")
            ),
        )
        return Target(genai, address, target.name, server_key, client_key, served, called)
