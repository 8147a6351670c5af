"""The thread that posts spans and metrics to the collector, off the event loop.

A finished span is a tuple (``records.py``); the request path only appends it to a
bounded queue (``OTEL_BSP_MAX_QUEUE_SIZE``: beyond it, spans are dropped and
counted, never waited for). Every ``OTEL_BSP_SCHEDULE_DELAY`` the thread encodes what
waits (``records.SpanWriter``) and posts it, 512 spans a request; every
``OTEL_METRIC_EXPORT_INTERVAL`` the histograms.
A collector that fails is logged once until it answers again; nothing is retried.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable

from ..urls import redact_url
from .protobuf import export_request
from .records import SpanRecord
from .settings import Destination, OTLPSettings

logger = logging.getLogger("cortex")
BATCH = 512  # spans a request at most (OTEL_BSP_MAX_EXPORT_BATCH_SIZE's default)


class Exporter:
    def __init__(
        self,
        settings: OTLPSettings,
        resource: bytes,
        scope: bytes,
        encode: Callable[[Iterable[SpanRecord]], bytes],
        metrics: Callable[[], Iterable[bytes]],
    ) -> None:
        self._settings = settings
        self._max_queue = settings.max_queue
        self._resource, self._scope = resource, scope
        self._encode = encode
        self._metrics = metrics
        self._spans: deque[SpanRecord] = deque()
        self.dropped = 0  # spans dropped with the queue full
        self._failing: set[str] = set()  # the URLs whose last post failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cortex-otlp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, span: SpanRecord) -> None:
        """A finished span; dropped when the queue is full."""
        if len(self._spans) >= self._max_queue:
            self.dropped += 1
            return
        self._spans.append(span)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Post what is left, then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        settings = self._settings
        every = min(settings.schedule_delay, settings.metric_interval)
        next_metrics = time.monotonic() + settings.metric_interval
        while not self._stop.wait(every):
            self._post_spans()
            if time.monotonic() >= next_metrics:
                next_metrics += settings.metric_interval
                self._post_metrics()
        self._post_spans()
        self._post_metrics()

    def _post_spans(self) -> None:
        destination = self._settings.traces
        spans = self._spans
        while destination is not None and spans:
            batch = [spans.popleft() for _ in range(min(BATCH, len(spans)))]
            encoded = self._encode(batch)
            self._post(destination, export_request(self._resource, self._scope, (encoded,)))

    def _post_metrics(self) -> None:
        destination = self._settings.metrics
        if destination is None:
            return
        metrics = list(self._metrics())
        if metrics:
            self._post(destination, export_request(self._resource, self._scope, metrics))

    def _post(self, to: Destination, body: bytes) -> None:
        headers = {**to.headers, "Content-Type": "application/x-protobuf"}
        if to.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        request = urllib.request.Request(to.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=to.timeout) as answer:
                answer.read()
        except (OSError, urllib.error.URLError) as exc:  # HTTPError is one too
            if to.url not in self._failing:
                self._failing.add(to.url)
                logger.warning("OTLP export to %s failed: %s", redact_url(to.url), exc)
            return
        if to.url in self._failing:
            self._failing.discard(to.url)
            logger.info("OTLP export to %s works again", redact_url(to.url))
