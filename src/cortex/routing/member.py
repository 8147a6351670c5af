"""A backend as the router sees it (``Member``), and one request's hold on it (``Lease``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..asks import ClientBody, Embedding, Generation
from ..backends.http import HTTPBackend
from ..backends.local import LocalBackend
from ..catalog import ModelEntry
from ..config import BackendSettings
from ..errors import CortexError, FirstByteTimeout, UpstreamStatus
from ..keepalive import policed
from ..modelname import pick
from ..urls import redact_url
from .circuit import Circuit
from .engine import EngineLoad
from .homes import Homes
from .prefix import PrefixIndex
from .residency import Residency

logger = logging.getLogger("cortex.router")

Backend = HTTPBackend | LocalBackend
MODEL_CIRCUITS = 256  # per backend; closed ones are forgotten first
Ask = TypeVar("Ask", bound=ClientBody)


@dataclass
class Member:
    config: BackendSettings
    backend: Backend
    circuit: Circuit
    in_flight: int = 0
    models: list[ModelEntry] | None = None  # None until its catalogue was fetched
    requests: int = 0
    failures: int = 0
    affinity_hits: int = 0
    first_byte_ms: float | None = None  # moving average of time to first byte
    # Faults a server reports in an answer (a 5xx) are its model's: one circuit per model.
    model_circuits: dict[str, Circuit] = field(default_factory=dict)
    residency: Residency = field(default_factory=Residency)
    prefixes: PrefixIndex = field(default_factory=PrefixIndex)
    homes: Homes = field(default_factory=Homes)  # conversations it is home to, lately
    engine: EngineLoad | None = None  # the server's own figures, where it reports them

    @property
    def name(self) -> str:
        return self.config.name

    def serves(self, model: str) -> bool:
        allowed = self.config.models
        if allowed is not None and pick(allowed, model) is None:
            return False
        return self.models is None or pick((e.name for e in self.models), model) is not None

    def upstream_name(self, model: str) -> str:
        """The name to send for ``model``: an OpenAI-compatible server matches names exactly,
        so it gets the one it listed; Ollama reads names by the same rule as Córtex."""
        if not self.backend.wire.exact_names or self.models is None:
            return model
        return pick((e.name for e in self.models), model) or model

    def prepared(self, ask: Ask) -> Ask:
        """``ask`` as this backend gets it: by the name it listed, and with its keep_alive
        policy when it is an Ollama request relayed to an Ollama server."""
        ask = ask.named(self.upstream_name(ask.model))
        if not self.backend.wire.speaks("ollama") or not _ollama_request(ask):
            return ask
        config = self.config
        payload = policed(ask.payload, config.keep_alive_max, config.keep_alive_override)
        return ask if payload is None else replace(ask, payload=payload, raw=None)

    def admits(self, model: str, now: float) -> bool:
        """Neither the backend's circuit nor this model's on it is open."""
        if not self.circuit.admits(now):
            return False
        circuit = self.model_circuits.get(model)
        return circuit is None or circuit.admits(now)

    def model_circuit(self, model: str) -> Circuit:
        circuit = self.model_circuits.get(model)
        if circuit is None:
            if len(self.model_circuits) >= MODEL_CIRCUITS:
                self.model_circuits = {
                    k: c for k, c in self.model_circuits.items() if c.state != "closed"
                }
            circuit = self.model_circuits[model] = Circuit(
                self.circuit.threshold, self.circuit.cooldown
            )
        return circuit

    def has_room(self) -> bool:
        limit = self.config.max_concurrent
        return limit is None or self.in_flight < limit

    def load(self) -> float:
        """Streams per unit of weight: Córtex's own, or the engine's running and waiting
        requests (other clients' too) when it reports more."""
        busy = self.in_flight if self.engine is None else max(self.in_flight, self.engine.busy)
        return busy / self.config.weight

    def status(self, show_url: bool = False) -> dict[str, Any]:
        """The backend's state for ``/cortex/backends``; its URL only if ``show_url``."""
        status: dict[str, Any] = {
            "name": self.name,
            "kind": self.config.kind,
            "healthy": self.circuit.state == "closed",
            "circuit": self.circuit.state,
            "in_flight": self.in_flight,
            "max_concurrent": self.config.max_concurrent,
            "weight": self.config.weight,
            "models": None if self.models is None else [e.name for e in self.models],
            "requests": self.requests,
            "failures": self.failures,
            "affinity_hits": self.affinity_hits,
            "first_byte_ms": None if self.first_byte_ms is None else round(self.first_byte_ms, 2),
            "loaded_models": self.residency.view(),
            "prefix_blocks": len(self.prefixes),
            "engine": None if self.engine is None else self.engine.view(),
            "failing_models": {
                model: c.state for model, c in self.model_circuits.items() if c.state != "closed"
            },
        }
        if show_url:
            status["url"] = redact_url(self.backend.base_url)
        status.update(self.backend.report())
        return status


def _ollama_request(ask: ClientBody) -> bool:
    if isinstance(ask, Generation):
        return ask.dialect == "ollama"
    return isinstance(ask, Embedding) and ask.route != "openai"


class Lease:
    """One request's hold on a backend slot; release it exactly once."""

    def __init__(
        self,
        member: Member,
        model: str,
        waited: float,
        affinity: bool,
        on_release: Callable[[Lease], None],
        queue_position: int = 0,
        cold: bool = False,
    ) -> None:
        self.member = member
        self.model = model
        self.waited = waited
        self.affinity = affinity
        self.queue_position = queue_position  # where it joined the queue; 0: not queued
        self.cold = cold  # the model was not in the backend's memory: it loads first
        self._on_release = on_release
        self._released = False

    @property
    def backend(self) -> Backend:
        return self.member.backend

    def succeeded(self) -> None:
        self.member.circuit.success()
        circuit = self.member.model_circuits.get(self.model)
        if circuit is not None:
            circuit.success()

    def first_byte(self, seconds: float) -> None:
        member = self.member
        self.succeeded()
        member.residency.answered(self.model)
        ms = seconds * 1000
        member.first_byte_ms = (
            ms if member.first_byte_ms is None else 0.8 * member.first_byte_ms + 0.2 * ms
        )

    def failed(self, exc: CortexError) -> None:
        if not exc.retryable:
            return
        self.member.failures += 1
        # A server that answered with a 5xx is up; the fault is its model's (a runner that
        # died, a model that does not fit), and must not shut out its other models. So is
        # one that took the request and gave no first byte in time (a wedged runner): its
        # catalogue still answers, and each answer would close the server's circuit again.
        answered = isinstance(exc, UpstreamStatus | FirstByteTimeout)
        circuit = self.member.model_circuit(self.model) if answered else self.member.circuit
        circuit.failure(time.monotonic())
        logger.warning("backend %s failed on %s: %s", self.member.name, self.model, exc.message)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.member.circuit.abandon()
            model_circuit = self.member.model_circuits.get(self.model)
            if model_circuit is not None:
                model_circuit.abandon()
            self._on_release(self)
