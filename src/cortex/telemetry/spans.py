"""One request's trace: its SERVER span and its upstream attempts' CLIENT spans
(``telemetry.RequestTrace`` and, for each attempt in turn, ``AttemptTrace``).

This is all the request path pays: the ids (one ``getrandbits``), the ``traceparent``,
two clock reads an attempt and, as the request ends, one plain tuple of what varies
handed to the exporter (``records.py`` has its shape). The SERVER span's times are the
ones the access log and Prometheus already read (``RequestRecord``), and the GenAI
histograms are computed from the same tuple in the exporter's thread
(``measurements.py``): nothing is measured twice, and nothing is built here. A span
that is not sampled is never encoded, but its context still goes upstream (flags ``00``)
and its measurements still count.

One object serves the request and each of its attempts, one after another: an attempt
that ended waits in it for the request's end, unless another attempt follows (a
failover), which hands it to the exporter on its own first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..asks import ClientBody, Generation
from ..events import Usage
from ..observe import RequestRecord
from .genai import EMBEDDINGS, OPERATIONS, error_type, parameter_pairs
from .protobuf import CLIENT, SERVER

if TYPE_CHECKING:
    from .otlp import OTLPTelemetry, Parent
    from .records import AttemptRecord, Http

_monotonic = time.monotonic
_SPAN = 0xFFFFFFFFFFFFFFFF
_NO_USAGE = Usage()


class Trace:
    """A request's trace, and the attempt it is in (or the last one, once it ended)."""

    __slots__ = (
        "_ask",
        "_attempt_id",
        "_attempt_span",
        "_client_key",
        "_route",
        "_scope",
        "_started",
        "_streamed",
        "_translator",
        "_usage",
        "ended_attempt",
        "parent_id",
        "sampled",
        "span_id",
        "state",
        "telemetry",
        "trace_id",
        "traceparent",
    )

    def __init__(
        self,
        telemetry: OTLPTelemetry,
        scope: Mapping[str, Any],
        route: str | None,
        parent: Parent | None,
    ) -> None:
        self.telemetry = telemetry
        self._scope: Mapping[str, Any] | None = scope  # None once the request ended
        self._route = route
        self._client_key: tuple[Any, ...] | None = None  # the last attempt's target
        self.ended_attempt: AttemptRecord | None = None
        if parent is None:
            ids = telemetry.ids.getrandbits(256)  # trace, own span, first attempt's span
            self.trace_id, self.span_id = ids >> 128, (ids >> 64) & _SPAN
            self._attempt_span = ids & _SPAN
            self.parent_id: bytes | None = None
            self.state = ""
            sampled = telemetry.root_sampled
            if sampled is None:
                sampled = telemetry.sampled(None, self.trace_id)
        else:
            ids = telemetry.ids.getrandbits(128)
            self.trace_id, self.span_id, self._attempt_span = (
                parent.trace_id,
                ids >> 64,
                ids & _SPAN,
            )
            self.parent_id, self.state = parent.span_id, parent.state
            sampled = telemetry.sampled(parent.sampled, self.trace_id)
        self.sampled = telemetry.traces and sampled

    def attempt(self, ask: ClientBody, backend: Any, sent_model: str) -> Trace:
        """The next upstream attempt (this object, as its ``AttemptTrace``)."""
        if self.ended_attempt is not None:  # a failover: the one before goes on its own
            self._hand_over(self.ended_attempt)
        if isinstance(ask, Generation):
            action, self._streamed = OPERATIONS[ask.shape], ask.stream
        else:
            action, self._streamed = EMBEDDINGS, False
        self._client_key = self.telemetry.targets[action, backend, sent_model]
        self._ask = ask
        self._usage: Callable[[], Usage] | None = None
        self._translator: object = None
        span_id = self._attempt_span or self.telemetry.ids.getrandbits(64)
        self._attempt_span = 0
        self.traceparent = (
            b"traceparent: 00-%032x-%016x-01\r\n"
            if self.sampled
            else b"traceparent: 00-%032x-%016x-00\r\n"
        ) % (self.trace_id, span_id)
        if self.state:
            self.traceparent += b"tracestate: %s\r\n" % self.state.encode("latin-1")
        self._started = _monotonic()
        self._attempt_id = span_id
        return self

    def __enter__(self) -> Trace:
        return self

    def reading(self, usage: Callable[[], Usage], translator: object) -> None:
        self._usage, self._translator = usage, translator

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        ended = _monotonic()
        usage = self._usage() if self._usage is not None else _NO_USAGE
        translator = self._translator
        attempt = (
            self._attempt_id,
            self._started,
            ended,
            parameter_pairs(self._ask.payload),
            usage.prompt_tokens,
            usage.completion_tokens,
            getattr(translator, "finish_reason", None),
            getattr(translator, "response_model", None),
            None if exc is None else error_type(exc),
        )
        if self._scope is None:  # the request ended first
            self._hand_over(attempt)
        else:
            self.ended_attempt = attempt

    def _hand_over(self, attempt: AttemptRecord) -> None:
        self.ended_attempt = None
        if not (self.sampled or self.telemetry.measured):
            return
        self.telemetry.exporter.add(
            (
                CLIENT,
                self.sampled,
                self.trace_id,
                self.span_id,
                self.state,
                self._client_key,
                self._streamed,
                attempt,
            )
        )

    def end(self, record: RequestRecord, ended: float) -> None:
        scope, self._scope = self._scope, None
        if not self.sampled and (self._client_key is None or not self.telemetry.measured):
            return
        assert scope is not None  # a request ends once
        status = record.status
        if status >= 400:
            failed: str | None = str(status)
        elif record.outcome in ("upstream-error", "timeout", "error"):
            failed = record.outcome
        else:
            failed = None
        if self.sampled:
            route = self._route
            if route is None:  # FastAPI matched its route while handling the request
                route = getattr(scope.get("route"), "path", None)
            client = scope.get("client")
            http: Http | None = (
                record.method,
                record.path,
                route,
                scope.get("server"),
                client and client[0],
                scope.get("scheme", "http"),
                scope.get("http_version", "1.1"),
            )
        else:
            http = None
        self.telemetry.exporter.add(
            (
                SERVER,
                self.sampled,
                self.trace_id,
                self.span_id,
                self.state,
                self._client_key,
                self._streamed,
                self.ended_attempt,
                self.parent_id,
                record.started,
                ended,
                http,
                status,
                failed,
                record.first_token,
                record.completion_tokens,
            )
        )
        self.ended_attempt = None
