"""OpenTelemetry's SDK, set up from the standard ``OTEL_*`` variables (OTLP over HTTP/protobuf).

Imported only when ``telemetry.signals`` says a signal is on, and only here and in
``spans.py``: the rest of Córtex sees ``telemetry.RequestTrace``. The providers
belong to the app, not to the process (no global provider is set), and are shut
down, flushing what is left, with it.

The exporters read their own variables (``OTEL_EXPORTER_OTLP_*``: endpoints,
headers, timeouts, compression), the tracer provider its sampler
(``OTEL_TRACES_SAMPLER``), the batch processor and the metric reader their
intervals (``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``), and the resource
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (``service.name`` is
``cortex`` unless they say otherwise).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import __version__
from . import RequestTrace, Signals
from .genai import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    Conventions,
)
from .spans import Instruments, ServerTrace

logger = logging.getLogger("cortex")
SCOPE = "cortex"
PROTOCOL = "http/protobuf"


class SDKTelemetry:
    """The app's tracer and meter; ``start`` opens one request's SERVER span."""

    def __init__(self, on: Signals, environ: Mapping[str, str] = os.environ) -> None:
        _check_protocol(environ)
        self.conventions = Conventions.from_env(environ)
        resource = _resource()
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        self._propagator = TraceContextTextMapPropagator()
        self.tracer: Tracer | None = None
        if on.traces:
            self._tracer_provider = TracerProvider(resource=resource)
            self._tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            self.tracer = self._tracer_provider.get_tracer(SCOPE, __version__)
        self.instruments: Instruments | None = None
        if on.metrics:
            reader = PeriodicExportingMetricReader(OTLPMetricExporter())
            self._meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
            self.instruments = _instruments(self._meter_provider)

    def start(self, scope: Mapping[str, Any], route: str | None) -> RequestTrace:
        parent = None
        if self.tracer is not None:
            parent = self._parent(scope["headers"])
        return ServerTrace(self, scope, route, parent)

    def _parent(self, headers: list[tuple[bytes, bytes]]) -> Context | None:
        """The client's trace context, from its ``traceparent`` (and ``tracestate``)."""
        carrier: dict[str, str] = {}
        for name, value in headers:
            if name == b"traceparent" or name == b"tracestate":
                carrier[name.decode()] = value.decode("latin-1")
        if "traceparent" not in carrier:
            return None
        return self._propagator.extract(carrier)

    def shutdown(self) -> None:
        """Flush and stop the exporters (their threads do the sending, off the event loop)."""
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        if self._meter_provider is not None:
            self._meter_provider.shutdown()


def _check_protocol(environ: Mapping[str, str]) -> None:
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        chosen = environ.get(name, PROTOCOL).strip()
        if chosen != PROTOCOL:
            logger.warning("%s=%s: Córtex exports OTLP over %s only", name, chosen, PROTOCOL)


def _resource() -> Resource:
    detected = Resource.create({"service.version": __version__})
    if str(detected.attributes.get("service.name", "")).startswith("unknown_service"):
        return detected.merge(Resource({"service.name": "cortex"}))
    return detected


def _instruments(provider: MeterProvider) -> Instruments:
    meter = provider.get_meter(SCOPE, __version__)

    def histogram(name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Any:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )

    return Instruments(
        operation_duration=histogram(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration.", DURATION_BUCKETS
        ),
        token_usage=histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used.",
            TOKEN_BUCKETS,
        ),
        request_duration=histogram(
            "gen_ai.server.request.duration",
            "s",
            "Generative AI server request duration such as time-to-last byte or last output token.",
            DURATION_BUCKETS,
        ),
        time_to_first_token=histogram(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time to generate first token for successful responses.",
            TTFT_BUCKETS,
        ),
        time_per_output_token=histogram(
            "gen_ai.server.time_per_output_token",
            "s",
            "Time per output token generated after the first token for successful responses.",
            TPOT_BUCKETS,
        ),
    )
