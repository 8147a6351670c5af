"""The exporter's thread's share of telemetry: measurements folded a batch at a time,
records that wake it as soon as a batch waits, and spans whose times are anchored to
the wall clock once a batch."""

from __future__ import annotations

import random
import socket
import threading
from types import SimpleNamespace
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from cortex.asks import Generation
from cortex.events import Usage
from cortex.observe.record import RequestRecord
from cortex.telemetry import Signals
from cortex.telemetry.exporter import RECORDS, Exporter
from cortex.telemetry.genai import DURATION_BUCKETS, TOKEN_BUCKETS, Conventions
from cortex.telemetry.histograms import Series
from cortex.telemetry.otlp import OTLPTelemetry
from cortex.telemetry.records import Record, SpanWriter
from cortex.telemetry.settings import OTLPSettings

ENVIRON = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_SCHEDULE_DELAY": "60000"}


def test_a_folded_batch_equals_its_values_added_one_by_one() -> None:
    picks = random.Random(29)
    for bounds in (DURATION_BUCKETS, TOKEN_BUCKETS):
        values = [picks.choice(bounds) for _ in range(50)]  # on the bounds themselves
        values += [picks.uniform(0, bounds[-1] * 2) for _ in range(200)]  # and past the last
        values += [0.0, bounds[0] / 2]
        one_by_one, folded = Series({}, bounds), Series({}, bounds)
        for value in values:
            one_by_one.add(value)
        folded.pending.extend(values[:100])
        folded.fold()
        folded.pending.extend(values[100:])
        folded.fold()
        assert folded.counts == one_by_one.counts
        assert sum(folded.counts) == len(values)
        assert (folded.low, folded.high) == (one_by_one.low, one_by_one.high)
        assert abs(folded.total - one_by_one.total) < 1e-9 * one_by_one.total
        assert folded.pending == []


def test_a_batch_of_records_wakes_the_thread_before_its_schedule() -> None:
    settings = OTLPSettings.from_env(ENVIRON, traces=False, metrics=True)
    measured: list[Record] = []
    batch_seen = threading.Event()

    def measure(records: Any) -> None:
        measured.extend(records)
        if len(measured) >= RECORDS:
            batch_seen.set()

    exporter = Exporter(settings, b"", b"", lambda records, offset: b"", measure, lambda: ())
    exporter.start()
    try:
        for n in range(RECORDS):
            exporter.add((n,))
        # The schedule is a minute away: only the full batch can have woken the thread.
        assert batch_seen.wait(30)
        assert measured == [(n,) for n in range(RECORDS)]
    finally:
        exporter.shutdown()


def test_a_silent_collector_holds_up_posts_not_measurements() -> None:
    """A collector that takes the connection and never answers holds each post for
    OTEL_EXPORTER_OTLP_TIMEOUT; the records behind it are still measured, none dropped."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        environ = {
            **ENVIRON,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "30000",
            "OTEL_BSP_MAX_QUEUE_SIZE": str(RECORDS + RECORDS // 2),
        }
        settings = OTLPSettings.from_env(environ, traces=True, metrics=False)
        measured: list[Record] = []
        progress = threading.Condition()

        def measure(records: Any) -> None:
            with progress:
                measured.extend(records)
                progress.notify_all()

        exporter = Exporter(settings, b"", b"", lambda records, offset: b"\n\x00", measure, list)
        exporter.start()
        try:
            for batch in range(4):
                for n in range(RECORDS):
                    exporter.add((batch, n))
                with progress:
                    done = (batch + 1) * RECORDS
                    assert progress.wait_for(lambda done=done: len(measured) >= done, 20)
            assert exporter.dropped == 0
            assert len(measured) == 4 * RECORDS
        finally:
            silent.close()  # the post that waits on it fails, and the threads stop
            exporter.shutdown(timeout=20)


class Collected:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, record: Record) -> None:
        self.records.append(record)


def _telemetry() -> tuple[OTLPTelemetry, Collected]:
    telemetry = OTLPTelemetry(Signals(True, True), {**ENVIRON, "OTEL_TRACES_SAMPLER": "always_on"})
    collected = Collected()
    telemetry.exporter = collected  # type: ignore[assignment]
    return telemetry, collected


class Backend:
    """An HTTP backend as telemetry sees it (hashed by identity, as the real ones are)."""

    host, port, wire = "10.0.0.7", 11434, SimpleNamespace(kind="ollama")


BACKEND = Backend()
ASK = Generation(
    {"model": "m", "messages": [], "stream": True}, None, "ollama", "chat", True, "ndjson"
)
SCOPE = {"headers": [], "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 5000)}


def test_a_failover_hands_the_first_attempt_over_on_its_own_and_spans_nest_in_time() -> None:
    telemetry, collected = _telemetry()
    record = RequestRecord("id", "POST", "/api/chat")
    trace = telemetry.start(SCOPE, "/api/chat")
    first = trace.attempt(ASK, BACKEND, "m")
    first_header = first.traceparent  # the next attempt's is another
    with first:
        pass
    assert collected.records == []  # it waits for the request's end, or a failover
    second = trace.attempt(ASK, BACKEND, "m")
    assert len(collected.records) == 1
    with second:
        second.reading(lambda: Usage(5, 7), SimpleNamespace(finish_reason="stop"))
    record.status = 200
    trace.end(record, record.started + 1.0)
    assert len(collected.records) == 2

    encoded = SpanWriter(Conventions()).encoded(collected.records, 1_000_000_000_000)
    spans = ScopeSpans.FromString(encoded).spans
    kinds = sorted(s.kind for s in spans)
    assert kinds == [2, 3, 3]  # one SERVER, two CLIENT
    server = next(s for s in spans if s.kind == 2)
    clients = [s for s in spans if s.kind == 3]
    assert len({s.span_id for s in spans}) == 3
    assert all(c.parent_span_id == server.span_id for c in clients)
    assert all(c.trace_id == server.trace_id for c in clients)
    assert all(server.start_time_unix_nano <= c.start_time_unix_nano for c in clients)
    assert all(c.end_time_unix_nano <= server.end_time_unix_nano for c in clients)
    assert server.end_time_unix_nano - server.start_time_unix_nano == 1_000_000_000
    header = second.traceparent.decode()
    assert header.startswith(f"traceparent: 00-{server.trace_id.hex()}-")
    assert header.startswith(
        f"traceparent: 00-{server.trace_id.hex()}-{clients[1].span_id.hex()}-01"
    )
    assert clients[0].span_id.hex() in first_header.decode()  # each attempt its own


def test_an_attempt_that_ends_after_its_request_is_handed_over_alone() -> None:
    telemetry, collected = _telemetry()
    record = RequestRecord("id", "POST", "/api/chat")
    record.status = 200
    trace = telemetry.start(SCOPE, "/api/chat")
    attempt = trace.attempt(ASK, BACKEND, "m")
    with attempt:
        trace.end(record, record.started + 0.5)
        assert len(collected.records) == 1
    assert len(collected.records) == 2
    spans = ScopeSpans.FromString(SpanWriter(Conventions()).encoded(collected.records, 0)).spans
    assert sorted(s.kind for s in spans) == [2, 3]
