"""A real OTLP/HTTP receiver on a loopback port: POST /v1/traces and /v1/metrics with
protobuf bodies, decoded with opentelemetry-proto's own message classes.

    with OTLPReceiver() as otlp:
        ...  # OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url
        span = otlp.wait_span(lambda s: s.name == "chat m")
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

Attributes = dict[str, Any]


def attributes(pairs: Any) -> Attributes:
    """An OTLP attribute list as a dict of Python values."""
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


class OTLPReceiver:
    def __init__(self) -> None:
        self.spans: list[tuple[Attributes, Span]] = []  # (resource attributes, span)
        self.metrics: list[Metric] = []
        self.posts: list[str] = []  # the paths posted to, in order
        self.content_types: set[str] = set()
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_span(self, match: Callable[[Span], bool], timeout: float = 10) -> Span:
        return self._wait(lambda: next((s for _, s in self.spans if match(s)), None), timeout)

    def wait_metric(self, name: str, match: Callable[[Any], bool], timeout: float = 10) -> Any:
        """A data point of metric ``name`` that ``match`` accepts (a histogram's point)."""

        def found() -> Any:
            for metric in self.metrics:
                if metric.name == name:
                    for point in metric.histogram.data_points:
                        if match(point):
                            return metric, point
            return None

        return self._wait(found, timeout)

    def _wait(self, find: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := find()) is None:
                left = deadline - time.monotonic()
                assert left > 0, "the telemetry did not arrive"
                self._cond.wait(left)
        return found

    def _received(self, path: str, body: bytes) -> bytes:
        with self._cond:
            self.posts.append(path)
            if path == "/v1/traces":
                traces = ExportTraceServiceRequest.FromString(body)
                for resource_spans in traces.resource_spans:
                    resource = attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        self.spans += [(resource, span) for span in scope_spans.spans]
                answer = ExportTraceServiceResponse().SerializeToString()
            else:
                exported = ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in exported.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        self.metrics += list(scope_metrics.metrics)
                answer = ExportMetricsServiceResponse().SerializeToString()
            self._cond.notify_all()
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.content_types.add(self.headers.get("Content-Type", ""))
                if self.path not in ("/v1/traces", "/v1/metrics"):
                    self.send_response(404)
                    self.end_headers()
                    return
                answer = receiver._received(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
