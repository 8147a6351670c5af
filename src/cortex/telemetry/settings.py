"""The standard ``OTEL_*`` variables Córtex reads, as the specification defines them.

Endpoints: a signal's own (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is used as it is;
the common one (``OTEL_EXPORTER_OTLP_ENDPOINT``) gets ``/v1/traces`` or ``/v1/metrics``
appended. Headers (``…_HEADERS``, ``k=v`` pairs, URL-encoded), timeouts (``…_TIMEOUT``,
ms) and ``gzip`` compression (``…_COMPRESSION``) likewise, the signal's own first.
The resource is ``OTEL_RESOURCE_ATTRIBUTES`` with ``OTEL_SERVICE_NAME`` over it
(``service.name`` is ``cortex`` when neither names one). The sampler is
``OTEL_TRACES_SAMPLER`` (``parentbased_always_on`` by default) with its
``OTEL_TRACES_SAMPLER_ARG``; batches go every ``OTEL_BSP_SCHEDULE_DELAY`` ms (5000),
at most ``OTEL_BSP_MAX_QUEUE_SIZE`` requests' records wait (2048, then new ones are
dropped), and metrics every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (60000).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .. import __version__

logger = logging.getLogger("cortex")
PROTOCOL = "http/protobuf"
SAMPLERS = {
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one signal is posted."""

    url: str
    headers: dict[str, str]
    timeout: float  # seconds
    gzip: bool


@dataclass(frozen=True, slots=True)
class Sampler:
    """Which traces are recorded: the rule, and the ratio of ``traceidratio``."""

    name: str = "parentbased_always_on"
    ratio: float = 1.0

    def root(self) -> bool | None:
        """Whether a trace that starts here is sampled: always, never, or None: by its id."""
        rule = self.name.removeprefix("parentbased_")
        return None if rule == "traceidratio" else rule == "always_on"

    def sampled(self, parent: bool | None, trace_id: int) -> bool:
        """Whether a span of this trace is recorded; ``parent``: the client's sampled flag,
        or None for a trace that starts here."""
        rule = self.name
        if rule.startswith("parentbased_"):
            if parent is not None:
                return parent
            rule = rule.removeprefix("parentbased_")
        if rule == "always_off":
            return False
        if rule == "traceidratio":  # the trace id's lower 64 bits, as the SDKs compare them
            return (trace_id & 0xFFFFFFFFFFFFFFFF) < self.ratio * 2**64
        return True


@dataclass(frozen=True, slots=True)
class OTLPSettings:
    traces: Destination | None
    metrics: Destination | None
    resource: dict[str, Any]
    sampler: Sampler
    schedule_delay: float  # seconds between span batches
    max_queue: int
    metric_interval: float  # seconds between metric exports

    @classmethod
    def from_env(cls, environ: Mapping[str, str], traces: bool, metrics: bool) -> OTLPSettings:
        for name in ("", "_TRACES", "_METRICS"):
            chosen = environ.get(f"OTEL_EXPORTER_OTLP{name}_PROTOCOL", PROTOCOL).strip()
            if chosen != PROTOCOL:
                logger.warning(
                    "OTEL_EXPORTER_OTLP%s_PROTOCOL=%s: Córtex sends %s", name, chosen, PROTOCOL
                )
        return cls(
            traces=_destination(environ, "TRACES") if traces else None,
            metrics=_destination(environ, "METRICS") if metrics else None,
            resource=_resource(environ),
            sampler=_sampler(environ),
            schedule_delay=_millis(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
            max_queue=int(_millis(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)),
            metric_interval=_millis(environ, "OTEL_METRIC_EXPORT_INTERVAL", 60000) / 1000,
        )


def _destination(environ: Mapping[str, str], signal: str) -> Destination:
    def chosen(name: str, default: str = "") -> str:
        own = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_{name}", "").strip()
        return own or environ.get(f"OTEL_EXPORTER_OTLP_{name}", default).strip()

    url = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip()
    if not url:
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip().rstrip("/")
        url = f"{base}/v1/{signal.lower()}"
    headers = {}
    for pair in chosen("HEADERS").split(","):
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip())] = unquote(value.strip())
    timeout = _number(chosen("TIMEOUT", "10000"), 10000) / 1000
    return Destination(url, headers, timeout, chosen("COMPRESSION").lower() == "gzip")


def _resource(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {"service.name": "cortex", "service.version": __version__}
    found.update({"telemetry.sdk.name": "cortex", "telemetry.sdk.language": "python"})
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        name, sep, value = pair.partition("=")
        if sep and name.strip():
            found[unquote(name.strip())] = unquote(value.strip())
    service = environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        found["service.name"] = service
    return found


def _sampler(environ: Mapping[str, str]) -> Sampler:
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        logger.warning("OTEL_TRACES_SAMPLER=%s is not one Córtex knows: sampling all", name)
        name = "parentbased_always_on"
    ratio = _number(environ.get("OTEL_TRACES_SAMPLER_ARG", "1"), 1.0)
    return Sampler(name, min(max(ratio, 0.0), 1.0))


def _millis(environ: Mapping[str, str], name: str, default: float) -> float:
    return max(_number(environ.get(name, ""), default), 1.0)


def _number(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default
