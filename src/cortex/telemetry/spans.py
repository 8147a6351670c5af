"""One request's SERVER span and its upstream attempts' CLIENT spans, with the GenAI
histograms recorded as each ends (``telemetry.RequestTrace``).

Timings and token counts are the ones the access log and Prometheus already use
(``RequestRecord``, the relay's usage): nothing is measured twice. A span that is
not sampled is never built, but its context still goes upstream (flags ``00``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any

from ..asks import Generation
from ..events import Usage
from ..observe import RequestRecord
from . import AttemptTrace
from .genai import CANCELLED, error_type, operation, provider, request_parameters
from .histograms import Histogram
from .protobuf import CLIENT, SERVER, span

if TYPE_CHECKING:
    from .otlp import OTLPTelemetry, Parent


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


class ServerTrace:
    """A request's SERVER span (when sampled) and its server-side GenAI histograms."""

    def __init__(
        self,
        telemetry: OTLPTelemetry,
        scope: Mapping[str, Any],
        route: str | None,
        parent: Parent | None,
    ) -> None:
        self.telemetry = telemetry
        self._scope, self._route = scope, route
        self._genai: dict[str, Any] | None = None  # the last attempt's, for the histograms
        self._genai_key: tuple[str, ...] = ()  # the same, as a histogram's series
        self._streamed = False
        self.parent_id = parent.span_id if parent is not None else None
        self.state = parent.state if parent is not None else ""
        ids = telemetry.ids
        self.trace_id = parent.trace_id if parent is not None else ids.getrandbits(128)
        self.span_id = ids.getrandbits(64).to_bytes(8, "big")
        sampled = parent.sampled if parent is not None else None
        self.sampled = telemetry.traces and telemetry.settings.sampler.sampled(
            sampled, self.trace_id
        )
        self._start_ns = time.time_ns()

    def attempt(self, ask: Generation, backend: Any, sent_model: str) -> AttemptTrace:
        # an HTTP backend names its host; the embedded model has none
        kind = backend.wire.kind if hasattr(backend, "host") else None
        genai: dict[str, Any] = {
            "gen_ai.operation.name": operation(ask),
            self.telemetry.conventions.provider_key: provider(kind),
            "gen_ai.request.model": sent_model,
        }
        self._genai, self._streamed = genai, ask.stream
        self._genai_key = (genai["gen_ai.operation.name"], provider(kind), sent_model)
        return ClientTrace(self, ask, backend, genai)

    def end(self, record: RequestRecord, ended: float) -> None:
        failed = _failure(record)
        if self.sampled:
            self._export(record, failed)
        instruments, genai = self.telemetry.instruments, self._genai
        if instruments is None or genai is None:
            return
        key = (self._genai_key, failed)
        attributes = genai if failed is None else {**genai, "error.type": failed}
        instruments.request_duration.record(ended - record.started, key, lambda: attributes)
        first = record.first_token
        if failed is not None or first is None or not self._streamed:
            return
        instruments.time_to_first_token.record(first - record.started, key, lambda: genai)
        tokens = record.completion_tokens
        if tokens is not None and tokens > 1 and ended > first:
            per_token = (ended - first) / (tokens - 1)
            instruments.time_per_output_token.record(per_token, key, lambda: genai)

    def _export(self, record: RequestRecord, failed: str | None) -> None:
        old = self.telemetry.conventions.old_http
        route, scope = self._route, self._scope
        if route is None:  # FastAPI matched its route while handling the request
            route = getattr(scope.get("route"), "path", None)
        client = scope.get("client")
        key = (record.method, record.path, route, scope.get("server"), client and client[0], old)
        fixed = self.telemetry.encoder.block(key, lambda: _http_attributes(scope, route, old))
        pairs: dict[str, Any] = {"http.response.status_code": record.status}
        if old:
            pairs["http.status_code"] = record.status
        if failed is not None:
            pairs["error.type"] = failed
        name = f"{record.method} {route}" if route else record.method
        error = failed is not None and not 400 <= record.status < 500  # a 4xx is the client's
        encoded = span(
            self.telemetry.encoder,
            self.trace_id.to_bytes(16, "big"),
            self.span_id,
            self.parent_id,
            self.state,
            name,
            SERVER,
            self._start_ns,
            time.time_ns(),
            fixed,
            pairs,
            error,
        )
        self.telemetry.exporter.add(encoded)


class ClientTrace:
    """One upstream attempt: its CLIENT span, the ``traceparent`` sent with it, and the
    client-side GenAI histograms (duration, token usage) recorded when it ends."""

    def __init__(
        self, server: ServerTrace, ask: Generation, backend: Any, genai: dict[str, Any]
    ) -> None:
        self._server = server
        self._ask = ask
        self._genai = genai
        self._usage: Callable[[], Usage] | None = None
        self._translator: object = None
        host = getattr(backend, "host", None)
        self._address = (
            {} if host is None else {"server.address": host, "server.port": backend.port}
        )
        self.span_id = server.telemetry.ids.getrandbits(64).to_bytes(8, "big")
        flags = b"01" if server.sampled else b"00"
        self.traceparent = b"traceparent: 00-%032x-%s-%s\r\n" % (
            server.trace_id,
            self.span_id.hex().encode(),
            flags,
        )
        if server.state:
            self.traceparent += b"tracestate: %s\r\n" % server.state.encode("latin-1")
        self._started = time.monotonic()
        self._start_ns = time.time_ns()

    def __enter__(self) -> ClientTrace:
        return self

    def reading(self, usage: Callable[[], Usage], translator: object) -> None:
        self._usage, self._translator = usage, translator

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        failed = None if exc is None else error_type(exc)
        usage = self._usage() if self._usage is not None else Usage()
        server = self._server
        if server.sampled:
            self._export(usage, failed)
        instruments = server.telemetry.instruments
        if instruments is None:
            return
        key = (server._genai_key, *self._address.values(), failed)

        def attributes(**more: str) -> dict[str, Any]:
            found = {**self._genai, **self._address, **more}
            if failed is not None:
                found["error.type"] = failed
            return found

        took = time.monotonic() - self._started
        instruments.operation_duration.record(took, key, attributes)
        if failed is None:
            counts = (("input", usage.prompt_tokens), ("output", usage.completion_tokens))
            for token_type, count in counts:
                if count is not None:
                    typed = partial(attributes, **{"gen_ai.token.type": token_type})
                    instruments.token_usage.record(count, (key, token_type), typed)

    def _export(self, usage: Usage, failed: str | None) -> None:
        genai, address = self._genai, self._address
        parameters = request_parameters(self._ask.payload)
        key = (*genai.values(), *address.values(), *parameters.items())
        fixed = self._server.telemetry.encoder.block(
            key, lambda: {**genai, **address, **parameters}
        )
        pairs: dict[str, Any] = {}
        if usage.prompt_tokens is not None:
            pairs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        if usage.completion_tokens is not None:
            pairs["gen_ai.usage.output_tokens"] = usage.completion_tokens
        finish = getattr(self._translator, "finish_reason", None)
        if finish:
            pairs["gen_ai.response.finish_reasons"] = (finish,)
        if failed is not None:
            pairs["error.type"] = failed
        server = self._server
        encoded = span(
            server.telemetry.encoder,
            server.trace_id.to_bytes(16, "big"),
            self.span_id,
            server.span_id,
            server.state,
            f"{genai['gen_ai.operation.name']} {genai['gen_ai.request.model']}",
            CLIENT,
            self._start_ns,
            time.time_ns(),
            fixed,
            pairs,
            failed is not None and failed != CANCELLED,
        )
        server.telemetry.exporter.add(encoded)


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
    if old:  # the names from before HTTP's conventions were stable, for http/dup
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
