"""One request's SERVER span and its upstream attempts' CLIENT spans, with the metrics
recorded as each ends (the SDK's side of ``telemetry.RequestTrace``).

Timings and token counts are the ones the access log and Prometheus already use
(``RequestRecord``, the relay's usage): nothing is measured twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context

from ..asks import Generation
from ..events import Usage
from ..observe import RequestRecord
from . import AttemptTrace
from .genai import error_type, operation, provider, request_parameters

if TYPE_CHECKING:
    from .sdk import SDKTelemetry


@dataclass(frozen=True, slots=True)
class Instruments:
    operation_duration: Any
    token_usage: Any
    request_duration: Any
    time_to_first_token: Any
    time_per_output_token: Any


class ServerTrace:
    """A request's SERVER span (when traces are on) and its server-side GenAI metrics."""

    def __init__(
        self,
        telemetry: SDKTelemetry,
        scope: Mapping[str, Any],
        route: str | None,
        parent: Context | None,
    ) -> None:
        self.telemetry = telemetry
        self._scope = scope if route is None else None  # FastAPI names its route later
        self.span: Span | None = None
        self._genai: dict[str, Any] | None = None  # the last attempt's, for the metrics
        self._streamed = False
        tracer = telemetry.tracer
        if tracer is None:
            return
        method = scope["method"]
        attributes = _http_attributes(scope, route, telemetry.conventions.old_http)
        name = f"{method} {route}" if route else method
        self.span = tracer.start_span(name, parent, SpanKind.SERVER, attributes)

    def attempt(self, ask: Generation, backend: Any, sent_model: str) -> AttemptTrace:
        conventions = self.telemetry.conventions
        kind = backend.wire.kind if hasattr(backend, "host") else None
        genai: dict[str, Any] = {
            "gen_ai.operation.name": operation(ask),
            conventions.provider_key: provider(kind),
            "gen_ai.request.model": sent_model,
        }
        self._genai, self._streamed = genai, ask.stream
        return ClientTrace(self, ask, backend, genai)

    def end(self, record: RequestRecord, ended: float) -> None:
        failed = _failure(record)
        span = self.span
        if span is not None:
            route = getattr(self._scope.get("route"), "path", None) if self._scope else None
            if isinstance(route, str):
                span.set_attribute("http.route", route)
                span.update_name(f"{record.method} {route}")
            span.set_attribute("http.response.status_code", record.status)
            if self.telemetry.conventions.old_http:
                span.set_attribute("http.status_code", record.status)
            if failed is not None:
                span.set_attribute("error.type", failed)
                if record.status >= 500 or record.status < 400:  # a 4xx is the client's fault
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
        instruments, genai = self.telemetry.instruments, self._genai
        if instruments is None or genai is None:
            return
        attributes = genai if failed is None else {**genai, "error.type": failed}
        instruments.request_duration.record(ended - record.started, attributes)
        first = record.first_token
        if failed is not None or first is None or not self._streamed:
            return
        instruments.time_to_first_token.record(first - record.started, genai)
        tokens = record.completion_tokens
        if tokens is not None and tokens > 1 and ended > first:
            instruments.time_per_output_token.record((ended - first) / (tokens - 1), genai)


class ClientTrace:
    """One upstream attempt: its CLIENT span, the ``traceparent`` sent with it, and the
    client-side GenAI metrics (duration, token usage) recorded when it ends."""

    def __init__(
        self, server: ServerTrace, ask: Generation, backend: Any, genai: dict[str, Any]
    ) -> None:
        self._server = server
        self._genai = genai
        self._usage: Callable[[], Usage] | None = None
        self._translator: object = None
        self._address: dict[str, Any] = {}
        host = getattr(backend, "host", None)
        if host is not None:
            self._address = {"server.address": host, "server.port": backend.port}
        self.span: Span | None = None
        self.traceparent = b""
        self._started = time.monotonic()
        tracer = server.telemetry.tracer
        if tracer is None:
            return
        attributes = {**genai, **self._address, **request_parameters(ask.payload)}
        name = f"{genai['gen_ai.operation.name']} {genai['gen_ai.request.model']}"
        parent = set_span_in_context(server.span) if server.span is not None else None
        self.span = span = tracer.start_span(name, parent, SpanKind.CLIENT, attributes)
        self.traceparent = _traceparent(span)

    def __enter__(self) -> ClientTrace:
        return self

    def reading(self, usage: Callable[[], Usage], translator: object) -> None:
        self._usage, self._translator = usage, translator

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        failed = None if exc is None else error_type(exc)
        usage = self._usage() if self._usage is not None else Usage()
        span = self.span
        if span is not None:
            if failed is not None:
                span.set_attribute("error.type", failed)
                span.set_status(Status(StatusCode.ERROR))
            _usage_attributes(span, usage, getattr(self._translator, "finish_reason", None))
            span.end()
        instruments = self._server.telemetry.instruments
        if instruments is None:
            return
        attributes = {**self._genai, **self._address}
        if failed is not None:
            attributes["error.type"] = failed
        instruments.operation_duration.record(time.monotonic() - self._started, attributes)
        if failed is None:
            for kind_, count in (
                ("input", usage.prompt_tokens),
                ("output", usage.completion_tokens),
            ):
                if count is not None:
                    instruments.token_usage.record(
                        count, {**attributes, "gen_ai.token.type": kind_}
                    )


def _usage_attributes(span: Span, usage: Usage, finish: str | None) -> None:
    if usage.prompt_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
    if usage.completion_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if finish:
        span.set_attribute("gen_ai.response.finish_reasons", (finish,))


def _traceparent(span: Span) -> bytes:
    """The W3C headers that make the upstream's work a child of ``span``."""
    context = span.get_span_context()
    line = b"traceparent: 00-%032x-%016x-%02x\r\n" % (
        context.trace_id,
        context.span_id,
        context.trace_flags,
    )
    state = context.trace_state.to_header() if context.trace_state else ""
    return line + b"tracestate: %s\r\n" % state.encode() if state else line


def _http_attributes(scope: Mapping[str, Any], route: str | None, old: bool) -> dict[str, Any]:
    server, client = scope.get("server"), scope.get("client")
    found: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if route:
        found["http.route"] = route
    if server:
        found["server.address"], found["server.port"] = server[0], server[1]
    if client:
        found["client.address"] = client[0]
    if old:  # the names before HTTP's conventions were stable (1.20), for http/dup
        found.update({"http.method": scope["method"], "http.target": scope["path"]})
        found["http.scheme"] = found["url.scheme"]
        found["http.flavor"] = found["network.protocol.version"]
        if server:
            found["net.host.name"], found["net.host.port"] = server[0], server[1]
        if client:
            found["net.sock.peer.addr"] = client[0]
    return found


def _failure(record: RequestRecord) -> str | None:
    """The request's ``error.type``: its status from 400 up, or how an answer that had
    started ended badly (``upstream-error``, ``timeout``)."""
    if record.status >= 400:
        return str(record.status)
    if record.outcome in ("upstream-error", "timeout", "error"):
        return record.outcome
    return None
