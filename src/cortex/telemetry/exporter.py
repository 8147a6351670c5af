"""The threads that measure, encode and post spans and metrics, off the event loop.

A request that ended is a tuple (``records.py``); the request path only appends it to
a bounded queue (``OTEL_BSP_MAX_QUEUE_SIZE`` records: beyond it, records are dropped
and counted, never waited for). Every ``OTEL_BSP_SCHEDULE_DELAY``, or as soon as a
batch waits (as the SDK's batch processor does), the exporter's thread adds what waits
to the histograms (``measurements.py``) and encodes the sampled spans
(``records.SpanWriter``), at most 512 spans a request; every
``OTEL_METRIC_EXPORT_INTERVAL`` the histograms. A second thread posts the encoded
requests: a collector that is slow or silent (each post may take up to
``OTEL_EXPORTER_OTLP_TIMEOUT``) holds up only the posts, never the measuring, so a
request's measurements are not lost to it. Posts wait in a queue of their own, bounded:
beyond it, a post is dropped and counted (its spans are lost; a metrics post is
cumulative, so the next one carries what it had).
A collector that fails is logged once until it answers again; nothing is retried.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from ..urls import redact_url
from .posting import Poster
from .protobuf import export_request
from .records import Record, clock_offset
from .settings import Destination, OTLPSettings

logger = logging.getLogger("cortex")
BATCH = 512  # spans a request at most (OTEL_BSP_MAX_EXPORT_BATCH_SIZE's default)
RECORDS = BATCH // 2  # records a post (two spans each at most); this many wake the thread
POSTS = 64  # encoded requests waiting for the posting thread at most
Post = tuple[Destination, bytes]


class Exporter:
    def __init__(
        self,
        settings: OTLPSettings,
        resource: bytes,
        scope: bytes,
        encode: Callable[[Iterable[Record], int], bytes],
        measure: Callable[[Iterable[Record]], None] | None,
        metrics: Callable[[], Iterable[bytes]],
    ) -> None:
        self._settings = settings
        self._max_queue = settings.max_queue
        self._resource, self._scope = resource, scope
        self._encode = encode
        self._measure = measure
        self._metrics = metrics
        self._records: deque[Record] = deque()
        self.dropped = 0  # records dropped with the queue full
        self.dropped_posts = 0  # encoded requests dropped with the posts' queue full
        self._failing: set[str] = set()  # the URLs whose last post failed
        self._poster = Poster()
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cortex-otlp", daemon=True)
        self._posts: queue.Queue[Post | None] = queue.Queue(POSTS)
        self._posting = threading.Thread(target=self._send, name="cortex-otlp-post", daemon=True)

    def start(self) -> None:
        self._posting.start()
        self._thread.start()

    def add(self, record: Record) -> None:
        """A request's record; dropped when the queue is full."""
        records = self._records
        waiting = len(records)
        if waiting >= self._max_queue:
            self.dropped += 1
            return
        records.append(record)
        if waiting == RECORDS - 1:  # a batch waits
            self._wake.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Post what is left, then stop: both threads within ``timeout`` seconds."""
        until = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._posting.is_alive():
            with contextlib.suppress(queue.Full):
                self._posts.put(None, timeout=max(0.0, until - time.monotonic()))
            self._posting.join(max(0.0, until - time.monotonic()))

    def _run(self) -> None:
        settings = self._settings
        every = min(settings.schedule_delay, settings.metric_interval)
        next_metrics = time.monotonic() + settings.metric_interval
        while not self._stopping:
            self._wake.wait(every)
            self._wake.clear()
            self._guarded(self._post_spans)
            if time.monotonic() >= next_metrics:
                next_metrics += settings.metric_interval
                self._guarded(self._post_metrics)
        self._guarded(self._post_spans)
        self._guarded(self._post_metrics)

    def _guarded(self, step: Callable[[], None]) -> None:
        """A fault in one step is logged, and the thread goes on: were it to end, every
        later record would wait in the queue until dropped."""
        try:
            step()
        except Exception:
            logger.exception("telemetry: the exporter's thread failed a step; it goes on")

    def _post_spans(self) -> None:
        """Measure and post what waits, a batch at a time."""
        destination = self._settings.traces
        records = self._records
        while records:
            batch = [records.popleft() for _ in range(min(RECORDS, len(records)))]
            if self._measure is not None:
                self._measure(batch)
            if destination is None:
                continue
            encoded = self._encode(batch, clock_offset())
            if encoded:
                self._post(destination, export_request(self._resource, self._scope, (encoded,)))

    def _post_metrics(self) -> None:
        destination = self._settings.metrics
        if destination is None:
            return
        metrics = list(self._metrics())
        if metrics:
            self._post(destination, export_request(self._resource, self._scope, metrics))

    def _post(self, to: Destination, body: bytes) -> None:
        """Hand an encoded request to the posting thread; dropped if too many wait."""
        try:
            self._posts.put_nowait((to, body))
        except queue.Full:
            self.dropped_posts += 1

    def _send(self) -> None:
        """The posting thread: each request in turn, until told to stop (``None``)."""
        while (post := self._posts.get()) is not None:
            self._send_one(*post)
        self._poster.close()

    def _send_one(self, to: Destination, body: bytes) -> None:
        headers = {**to.headers, "Content-Type": "application/x-protobuf"}
        if to.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        try:
            self._poster.post(to, body, headers)
        except Exception as exc:  # PostFailed, or a fault of ours: this thread must go on
            if to.url not in self._failing:
                self._failing.add(to.url)
                logger.warning("OTLP export to %s failed: %s", redact_url(to.url), exc)
            return
        if to.url in self._failing:
            self._failing.discard(to.url)
            logger.info("OTLP export to %s works again", redact_url(to.url))
