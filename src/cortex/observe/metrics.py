"""Córtex's Prometheus metrics, on a registry of the app's own (no process-wide state): the
instruments are plain numbers (``instruments.py``), rendered as families at a scrape.

Labels stay few and bounded: a model label is only a model some backend lists
or answered for (anything else is "other"), and there are no key or prompt labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from .instruments import CounterSeries, HistogramSeries
from .record import RequestRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MAX_MODEL_LABELS = 100
RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 500)


class Metrics:
    def __init__(self, known_model: Callable[[str], bool], queue_depth: Callable[[], int]) -> None:
        self._models: set[str] = set()
        self._known_model = known_model
        self._queue_depth = queue_depth
        self.requests = CounterSeries(
            "cortex_requests", "Requests answered", ["route", "model", "backend", "status"]
        )
        self.ttft = HistogramSeries(
            "cortex_time_to_first_token_seconds",
            "From request to first relayed token",
            LATENCY_BUCKETS,
            ["route", "model"],
        )
        self.duration = HistogramSeries(
            "cortex_request_duration_seconds",
            "From request to the end of its answer",
            LATENCY_BUCKETS,
            ["route", "model"],
        )
        self.tokens_per_second = HistogramSeries(
            "cortex_tokens_per_second",
            "Completion tokens per second of each answer",
            RATE_BUCKETS,
            ["model"],
        )
        self.tokens = CounterSeries(
            "cortex_tokens", "Tokens, as the upstreams report them", ["model", "kind"]
        )
        self.active = 0  # counted by the pipeline, read at a scrape
        self.queue_wait = HistogramSeries(
            "cortex_queue_wait_seconds", "Time spent waiting for a backend slot", LATENCY_BUCKETS
        )
        self.upstream_errors = CounterSeries(
            "cortex_upstream_errors", "Answers that failed at the model server", ["backend", "kind"]
        )
        self.cancellations = CounterSeries(
            "cortex_client_cancellations", "Answers the client walked away from", ["route"]
        )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        """The families a scrape shows, in this order (the registry calls it)."""
        yield self.requests.family()
        yield self.ttft.family()
        yield self.duration.family()
        yield self.tokens_per_second.family()
        yield self.tokens.family()
        yield GaugeMetricFamily(
            "cortex_active_streams", "Answers being relayed now", value=float(self.active)
        )
        yield GaugeMetricFamily(
            "cortex_queue_depth",
            "Requests waiting for a busy backend",
            value=float(self._queue_depth()),
        )
        yield self.queue_wait.family()
        yield self.upstream_errors.family()
        yield self.cancellations.family()

    def observe(self, record: RequestRecord, ended: float) -> None:
        route = record.path if record.relayed else "other"
        model = self._model_label(record)
        backend = record.backend or "none"
        self.requests.inc((route, model, backend, str(record.status)))
        if not record.relayed:
            return
        self.duration.observe((route, model), ended - record.started)
        if record.first_token is not None:
            self.ttft.observe((route, model), record.first_token - record.started)
        if record.queue_wait:
            self.queue_wait.observe((), record.queue_wait)
        if record.prompt_tokens:
            self.tokens.inc((model, "prompt"), record.prompt_tokens)
        if record.completion_tokens:
            self.tokens.inc((model, "completion"), record.completion_tokens)
            if record.first_token is not None and ended > record.first_token:
                rate = record.completion_tokens / (ended - record.first_token)
                self.tokens_per_second.observe((model,), rate)
        if record.outcome == "client-cancelled":
            self.cancellations.inc((route,))
        elif record.outcome in ("upstream-error", "timeout"):
            self.upstream_errors.inc((backend, record.outcome))

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
