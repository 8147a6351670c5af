"""One request's SERVER span and its upstream attempts' CLIENT spans, with the GenAI
histograms recorded as each ends (``telemetry.RequestTrace``).

Timings and token counts are the ones the access log and Prometheus already use
(``RequestRecord``, the relay's usage): nothing is measured twice. A span that is
not sampled is never recorded, but its context still goes upstream (flags ``00``).
This is the request path's share: ids, two clock reads a span, a tuple handed to the
exporter (``records.py`` encodes it later, in its thread) and a few ``Series.add``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..asks import ClientBody, Generation
from ..events import Usage
from ..observe import RequestRecord
from . import AttemptTrace
from .genai import EMBEDDINGS, OPERATIONS, error_type, parameter_pairs
from .protobuf import CLIENT, SERVER
from .targets import Target

if TYPE_CHECKING:
    from .otlp import OTLPTelemetry, Parent

NO_USAGE = Usage()
_time_ns, _monotonic = time.time_ns, time.monotonic


class ServerTrace:
    """A request's SERVER span (when sampled) and its server-side GenAI histograms."""

    __slots__ = (
        "_route",
        "_scope",
        "_start_ns",
        "_streamed",
        "_target",
        "parent_id",
        "sampled",
        "span_id",
        "state",
        "telemetry",
        "trace_id",
    )

    def __init__(
        self,
        telemetry: OTLPTelemetry,
        scope: Mapping[str, Any],
        route: str | None,
        parent: Parent | None,
    ) -> None:
        self.telemetry = telemetry
        self._scope, self._route = scope, route
        self._target: Target | None = None  # the last attempt's, for the histograms
        self._streamed = False
        if parent is None:
            ids = telemetry.ids.getrandbits(192)
            self.trace_id, self.span_id = ids >> 64, ids & 0xFFFFFFFFFFFFFFFF
            self.parent_id: bytes | None = None
            self.state = ""
            sampled = telemetry.root_sampled
            if sampled is None:
                sampled = telemetry.sampled(None, self.trace_id)
        else:
            self.trace_id, self.span_id = parent.trace_id, telemetry.ids.getrandbits(64)
            self.parent_id, self.state = parent.span_id, parent.state
            sampled = telemetry.sampled(parent.sampled, self.trace_id)
        self.sampled = telemetry.traces and sampled
        self._start_ns = _time_ns()

    def attempt(self, ask: ClientBody, backend: Any, sent_model: str) -> AttemptTrace:
        if isinstance(ask, Generation):
            action, self._streamed = OPERATIONS[ask.shape], ask.stream
        else:
            action, self._streamed = EMBEDDINGS, False
        self._target = target = self.telemetry.targets.find(action, backend, sent_model)
        return ClientTrace(self, ask, target)

    def end(self, record: RequestRecord, ended: float) -> None:
        status = record.status
        if status >= 400:
            failed: str | None = str(status)
        elif record.outcome in ("upstream-error", "timeout", "error"):
            failed = record.outcome
        else:
            failed = None
        if self.sampled:
            self.telemetry.exporter.add(
                (
                    SERVER,
                    self.trace_id,
                    self.span_id,
                    self.parent_id,
                    self.state,
                    self._start_ns,
                    _time_ns(),
                    self._http(record),
                    status,
                    failed,
                )
            )
        target = self._target
        if target is None or target.served is None:
            return
        took = ended - record.started
        if failed is not None:
            instruments = self.telemetry.instruments
            assert instruments is not None  # a target has series only when metrics are on
            key = (target.server_key, failed)
            instruments.request_duration.record(took, key, lambda: target.server_attributes(failed))
            return
        duration, to_first, per_token = target.served
        duration.add(took)
        first = record.first_token
        if first is None or not self._streamed:
            return
        to_first.add(first - record.started)
        tokens = record.completion_tokens
        if tokens is not None and tokens > 1 and ended > first:
            per_token.add((ended - first) / (tokens - 1))

    def _http(self, record: RequestRecord) -> tuple[Any, ...]:
        scope, route = self._scope, self._route
        if route is None:  # FastAPI matched its route while handling the request
            route = getattr(scope.get("route"), "path", None)
        client = scope.get("client")
        return (
            record.method,
            record.path,
            route,
            scope.get("server"),
            client and client[0],
            scope.get("scheme", "http"),
            scope.get("http_version", "1.1"),
        )


class ClientTrace:
    """One upstream attempt: its CLIENT span, the ``traceparent`` sent with it, and the
    client-side GenAI histograms (duration, token usage) recorded when it ends."""

    __slots__ = (
        "_ask",
        "_server",
        "_start_ns",
        "_started",
        "_target",
        "_translator",
        "_usage",
        "span_id",
        "traceparent",
    )

    def __init__(self, server: ServerTrace, ask: ClientBody, target: Target) -> None:
        self._server, self._ask, self._target = server, ask, target
        self._usage: Callable[[], Usage] | None = None
        self._translator: object = None
        self.span_id = span_id = server.telemetry.ids.getrandbits(64)
        self.traceparent = b"traceparent: 00-%032x-%016x-%s\r\n" % (
            server.trace_id,
            span_id,
            b"01" if server.sampled else b"00",
        )
        if server.state:
            self.traceparent += b"tracestate: %s\r\n" % server.state.encode("latin-1")
        self._started = _monotonic()
        self._start_ns = _time_ns()

    def __enter__(self) -> ClientTrace:
        return self

    def reading(self, usage: Callable[[], Usage], translator: object) -> None:
        self._usage, self._translator = usage, translator

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        failed = None if exc is None else error_type(exc)
        usage = self._usage() if self._usage is not None else NO_USAGE
        server, target = self._server, self._target
        if server.sampled:
            translator = self._translator
            server.telemetry.exporter.add(
                (
                    CLIENT,
                    server.trace_id,
                    self.span_id,
                    server.span_id,
                    server.state,
                    self._start_ns,
                    _time_ns(),
                    target.client_key,
                    parameter_pairs(self._ask.payload),
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    getattr(translator, "finish_reason", None),
                    getattr(translator, "response_model", None),
                    failed,
                )
            )
        called = target.called
        if called is None:
            return
        took = _monotonic() - self._started
        if failed is not None:
            instruments = server.telemetry.instruments
            assert instruments is not None  # a target has series only when metrics are on
            key = (target.client_key, failed)
            instruments.operation_duration.record(
                took, key, lambda: target.client_attributes(failed)
            )
            return
        duration, prompt, completion = called
        duration.add(took)
        if usage.prompt_tokens is not None:
            prompt.add(usage.prompt_tokens)
        if usage.completion_tokens is not None:
            completion.add(usage.completion_tokens)
