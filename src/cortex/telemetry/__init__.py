"""What the rest of Córtex knows of OpenTelemetry: when it is on, and two small contracts.

The exporter (``otlp.py``, Córtex's own: no SDK) is imported only when the standard
``OTEL_*`` variables turn telemetry on (``telemetry_from_env``): with it off, a request
carries ``trace = None`` and an upstream attempt the do-nothing ``UNWATCHED``, so it
creates no span and pays one branch. The rule, after the specification's variables:

- ``OTEL_SDK_DISABLED=true`` turns everything off;
- traces are on when an OTLP endpoint for them is set (``OTEL_EXPORTER_OTLP_ENDPOINT``
  or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and ``OTEL_TRACES_EXPORTER`` is unset or
  ``otlp``; metrics likewise (``…_METRICS_ENDPOINT``, ``OTEL_METRICS_EXPORTER``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..asks import ClientBody
    from ..events import Usage
    from ..observe import RequestRecord

logger = logging.getLogger("cortex")


@dataclass(frozen=True, slots=True)
class Signals:
    traces: bool
    metrics: bool


def signals(environ: Mapping[str, str]) -> Signals:
    """Which signals the ``OTEL_*`` variables turn on (see the module's docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Signals(False, False)
    common = bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())
    return Signals(_on(environ, "TRACES", common), _on(environ, "METRICS", common))


def _on(environ: Mapping[str, str], signal: str, common: bool) -> bool:
    endpoint = common or bool(environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip())
    exporters = {e.strip().lower() for e in environ.get(f"OTEL_{signal}_EXPORTER", "").split(",")}
    exporters.discard("")
    if exporters - {"otlp", "none"}:
        logger.warning("OTEL_%s_EXPORTER: Córtex exports only otlp (HTTP/protobuf)", signal)
    return endpoint and (not exporters or "otlp" in exporters)


class AttemptTrace(Protocol):
    """One upstream attempt's CLIENT span, used as a context manager around the attempt."""

    traceparent: bytes  # header lines for the upstream (empty when not traced)

    def __enter__(self) -> AttemptTrace: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None: ...

    def reading(self, usage: Callable[[], Usage], translator: object) -> None:
        """Where the answer's token counts and finish will be, once it ended."""


class RequestTrace(Protocol):
    """One request's SERVER span, and the CLIENT spans of its upstream attempts."""

    def attempt(self, ask: ClientBody, backend: Any, sent_model: str) -> AttemptTrace: ...

    def end(self, record: RequestRecord, ended: float) -> None: ...


class Telemetry(Protocol):
    """The app's OpenTelemetry (``otlp.OTLPTelemetry``): a trace for each request."""

    def start(self, scope: Mapping[str, Any], route: str | None) -> RequestTrace: ...

    def open(self) -> None:
        """Start exporting (in the serving process, once it runs)."""

    def shutdown(self) -> None:
        """Export what is left and stop (blocks: call it from a thread)."""


def telemetry_from_env(environ: Mapping[str, str]) -> Telemetry | None:
    """Córtex's telemetry, set up, when the ``OTEL_*`` variables turn a signal on; else None."""
    on = signals(environ)
    if not (on.traces or on.metrics):
        return None
    from .otlp import OTLPTelemetry

    return OTLPTelemetry(on, environ)


class _Unwatched:
    """The attempt of a request that is not traced: does nothing, cheaply."""

    traceparent = b""

    def __enter__(self) -> _Unwatched:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        return None

    def reading(self, usage: Callable[[], Usage], translator: object) -> None:
        return None


UNWATCHED: AttemptTrace = _Unwatched()
