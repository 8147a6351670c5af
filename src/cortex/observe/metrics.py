"""Prometheus instruments, on a registry of the app's own (no process-wide state).

Labels stay few and bounded: a model label is only a model some backend lists
or answered for (anything else is "other"), and there are no key or prompt labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .record import RequestRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MAX_MODEL_LABELS = 100
RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 500)


class Metrics:
    def __init__(self, known_model: Callable[[str], bool], queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._models: set[str] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._known_model = known_model
        r = self.registry
        self.requests = Counter(
            "cortex_requests",
            "Requests answered",
            ["route", "model", "backend", "status"],
            registry=r,
        )
        self.ttft = Histogram(
            "cortex_time_to_first_token_seconds",
            "From request to first relayed token",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "cortex_request_duration_seconds",
            "From request to the end of its answer",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "cortex_tokens_per_second",
            "Completion tokens per second of each answer",
            ["model"],
            buckets=RATE_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "cortex_tokens", "Tokens, as the upstreams report them", ["model", "kind"], registry=r
        )
        # counted by the pipeline, read at a scrape: no lock and four calls a request each way
        self.active = 0
        active = Gauge("cortex_active_streams", "Answers being relayed now", registry=r)
        active.set_function(lambda: float(self.active))
        queued = Gauge("cortex_queue_depth", "Requests waiting for a busy backend", registry=r)
        queued.set_function(lambda: float(queue_depth()))
        self.queue_wait = Histogram(
            "cortex_queue_wait_seconds",
            "Time spent waiting for a backend slot",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "cortex_upstream_errors",
            "Answers that failed at the model server",
            ["backend", "kind"],
            registry=r,
        )
        self.cancellations = Counter(
            "cortex_client_cancellations",
            "Answers the client walked away from",
            ["route"],
            registry=r,
        )

    def observe(self, record: RequestRecord, ended: float) -> None:
        route = record.path if record.relayed else "other"
        model = self._model_label(record)
        backend = record.backend or "none"
        child = self._child
        child(self.requests, route, model, backend, str(record.status)).inc()
        if not record.relayed:
            return
        child(self.duration, route, model).observe(ended - record.started)
        if record.first_token is not None:
            child(self.ttft, route, model).observe(record.first_token - record.started)
        if record.queue_wait:
            self.queue_wait.observe(record.queue_wait)
        if record.prompt_tokens:
            child(self.tokens, model, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            child(self.tokens, model, "completion").inc(record.completion_tokens)
            if record.first_token is not None and ended > record.first_token:
                child(self.tokens_per_second, model).observe(
                    record.completion_tokens / (ended - record.first_token)
                )
        if record.outcome == "client-cancelled":
            child(self.cancellations, route).inc()
        elif record.outcome in ("upstream-error", "timeout"):
            child(self.upstream_errors, backend, record.outcome).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (the label values are bounded):
        the lookups were over half of the metrics' cost per request (profiled)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def _model_label(self, record: RequestRecord) -> str:
        """A listed model, or one that was answered for, while there are few; else "other"."""
        model = record.model
        if not model or not (record.status == 200 or self._known_model(model)):
            return "other"
        if model not in self._models:
            if len(self._models) >= MAX_MODEL_LABELS:
                return "other"  # an upstream that answers for any name cannot grow the series
            self._models.add(model)
        return model

    def render(self) -> bytes:
        return generate_latest(self.registry)
