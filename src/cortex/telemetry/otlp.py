"""Córtex's OpenTelemetry: W3C trace context in and out, spans and GenAI histograms
exported over OTLP/HTTP with protobuf bodies, by a thread of its own.

It follows the OpenTelemetry specification's variables (``settings.py``) without its
SDK: the SDK's span objects, its encoder and its histograms cost about 330 µs of CPU
a request, as much as the rest of Córtex (``bench/otel.py``); this costs some 12–34 µs,
about 9% of a short stream's instructions (docs/observability.md). The tests read what
it sends with opentelemetry-proto's own classes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .. import __version__
from . import RequestTrace, Signals
from .exporter import Exporter
from .genai import DURATION_BUCKETS, TOKEN_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS, Conventions
from .histograms import Histogram, Instrument, encoded
from .measurements import Measurements
from .protobuf import resource, scope
from .records import SpanWriter
from .settings import OTLPSettings
from .spans import Trace
from .targets import Instruments, Targets

SCOPE = "cortex"
_name = itemgetter(0)
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Parent:
    """The client's span, from its ``traceparent`` (and ``tracestate``)."""

    trace_id: int
    span_id: bytes
    sampled: bool
    state: str


class OTLPTelemetry:
    """The app's telemetry; ``start`` begins one request's trace."""

    def __init__(self, on: Signals, environ: Mapping[str, str]) -> None:
        self.settings = settings = OTLPSettings.from_env(environ, on.traces, on.metrics)
        self.conventions = conventions = Conventions.from_env(environ)
        self.traces = on.traces
        self.measured = on.metrics
        self.sampled = settings.sampler.sampled
        self.root_sampled = settings.sampler.root()
        self.ids = random.Random()  # seeded from the OS; ids need to be unique, not secret
        self.instruments: Instruments | None = _instruments() if on.metrics else None
        self.targets = Targets()
        histograms = list(self.instruments.all()) if self.instruments is not None else []
        # The exporter's thread's alone, like their caches and the histograms.
        writer = SpanWriter(conventions)
        measurements = (
            Measurements(self.instruments, conventions) if self.instruments is not None else None
        )
        self.exporter = Exporter(
            settings,
            resource(settings.resource),
            scope(SCOPE, __version__),
            writer.encoded,
            measurements.add if measurements is not None else None,
            lambda: encoded(histograms, writer.encoder),
        )

    def start(self, scope: Mapping[str, Any], route: str | None) -> RequestTrace:
        headers = scope["headers"]
        if self.traces and b"traceparent" in map(_name, headers):  # looked for in C
            return Trace(self, scope, route, _parent(headers))
        return Trace(self, scope, route, None)

    def open(self) -> None:
        self.exporter.start()

    def shutdown(self) -> None:
        self.exporter.shutdown()


def _parent(headers: list[tuple[bytes, bytes]]) -> Parent | None:
    parent: bytes | None = None
    state = b""
    for name, value in headers:
        if name == b"traceparent":
            parent = value
        elif name == b"tracestate":
            state = value
    if parent is None:
        return None
    return parse_traceparent(parent.decode("latin-1").strip(), state.decode("latin-1"))


def parse_traceparent(value: str, state: str = "") -> Parent | None:
    """A W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``), if it is a valid one."""
    parts = value.split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace, span, flags = parts[:4]
    if version == "00" and len(parts) != 4:
        return None
    if (len(trace), len(span), len(flags)) != (32, 16, 2):
        return None
    if not HEX.issuperset(version + trace + span + flags):
        return None
    trace_id = int(trace, 16)
    if trace_id == 0 or int(span, 16) == 0:
        return None
    state = state.strip() if len(state) <= 512 else ""
    return Parent(trace_id, bytes.fromhex(span), bool(int(flags, 16) & 1), state)


def _instruments() -> Instruments:
    return Instruments(
        operation_duration=Histogram(
            Instrument(
                "gen_ai.client.operation.duration",
                "s",
                "GenAI operation duration.",
                DURATION_BUCKETS,
            )
        ),
        token_usage=Histogram(
            Instrument(
                "gen_ai.client.token.usage",
                "{token}",
                "Number of input and output tokens used.",
                TOKEN_BUCKETS,
            )
        ),
        request_duration=Histogram(
            Instrument(
                "gen_ai.server.request.duration",
                "s",
                "Generative AI server request duration such as time-to-last byte or last "
                "output token.",
                DURATION_BUCKETS,
            )
        ),
        time_to_first_token=Histogram(
            Instrument(
                "gen_ai.server.time_to_first_token",
                "s",
                "Time to generate first token for successful responses.",
                TTFT_BUCKETS,
            )
        ),
        time_per_output_token=Histogram(
            Instrument(
                "gen_ai.server.time_per_output_token",
                "s",
                "Time per output token generated after the first token for successful responses.",
                TPOT_BUCKETS,
            )
        ),
    )
