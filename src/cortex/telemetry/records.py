"""Finished spans as the request path records them, plain tuples of what varies, and
their OTLP encoding, done later by the exporter's thread (``SpanWriter``), a batch at a
time, with the attributes that repeat (a route's, a target's) written once and kept.

A tuple costs the request path a fraction of a microsecond; encoding it costs the
thread about one, less than building the span's attributes on the request path did,
because nothing is built again for values seen before (docs/observability.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from .genai import CANCELLED, Conventions
from .protobuf import (
    CACHE_MAX,
    CLIENT,
    ERROR,
    SERVER,
    Encoder,
    span,
    span_fixed,
    span_head,
)
from .targets import address_attributes, genai_attributes

T = TypeVar("T")
Parameters = tuple[tuple[str, Any], ...]  # gen_ai.request.*, as (name, value) pairs
# (method, path, route, server (host, port), client host, scheme, HTTP version)
Http = tuple[str, str, str | None, Any, str | None, str, str]
# SERVER, trace id, span id, parent span id, tracestate, start and end (ns), HTTP
# attributes, status, error.type
ServerRecord = tuple[int, int, int, bytes | None, str, int, int, Http, int, str | None]
# CLIENT, trace id, span id, parent (SERVER) span id, tracestate, start and end (ns),
# target (its client_key), request parameters, input and output tokens, finish reason,
# response model, error.type. Only strings, numbers and tuples of them: Python's garbage
# collector stops tracking such tuples at once, so waiting records cost it nothing.
ClientRecord = tuple[
    int,
    int,
    int,
    int,
    str,
    int,
    int,
    tuple[Any, ...],
    "Parameters",
    int | None,
    int | None,
    str | None,
    str | None,
    str | None,
]
SpanRecord = tuple[Any, ...]  # a ServerRecord or a ClientRecord, told by its first item


class SpanWriter:
    """Encodes span records; used by the exporter's thread only. What repeats is written
    once and kept: a span's name, kind and the attributes that come together (a route's;
    a target's with its request parameters), and the attributes that end it (status,
    token counts, finish, error)."""

    def __init__(self, conventions: Conventions) -> None:
        self.encoder = Encoder()
        self._old_http = conventions.old_http
        self._provider_key = conventions.provider_key
        self._heads: dict[tuple[Any, ...], bytes] = {}
        self._tails: dict[tuple[Any, ...], bytes] = {}

    def encoded(self, records: Iterable[SpanRecord]) -> bytes:
        """The records as Spans (``protobuf.span``) one after another, in one loop: a
        batch shares the caches, and the spans are joined once."""
        heads, tails = self._heads, self._tails
        pieces: list[bytes] = []
        for record in records:
            if record[0] == SERVER:
                _, trace_id, span_id, parent, state, start, end, http, status, failed = record
                head = heads.get(http)
                if head is None:
                    head = _kept(heads, http, self._http_head(http))
                tail = tails.get((status, failed))
                if tail is None:
                    tail = _kept(tails, (status, failed), self._server_tail(status, failed))
            else:
                _, trace_id, span_id, parent, state, start, end, target, parameters = record[:9]
                parent = parent.to_bytes(8, "big")
                key = (target, parameters)
                head = heads.get(key)
                if head is None:
                    head = _kept(heads, key, self._target_head(target, parameters))
                ending = record[9:]
                tail = tails.get(ending)
                if tail is None:
                    tail = _kept(tails, ending, self._client_tail(*ending))
            fixed = span_fixed(trace_id, span_id, parent, state, start, end)
            pieces += span(fixed, head, tail)
        return b"".join(pieces)

    def _http_head(self, http: Http) -> bytes:
        method, route = http[0], http[2]
        name = f"{method} {route}" if route else method
        attributes = self.encoder.attributes(9, http_attributes(http, self._old_http))
        return span_head(name, SERVER) + attributes

    def _server_tail(self, status: int, failed: str | None) -> bytes:
        pairs: dict[str, Any] = {"http.response.status_code": status}
        if self._old_http:
            pairs["http.status_code"] = status
        if failed is None:
            return self.encoder.attributes(9, pairs)
        pairs["error.type"] = failed
        error = not 400 <= status < 500  # a 4xx is the client's
        return self.encoder.attributes(9, pairs) + (ERROR if error else b"")

    def _target_head(self, client_key: tuple[Any, ...], parameters: Parameters) -> bytes:
        server_key = client_key[0]
        pairs = genai_attributes(server_key, self._provider_key)
        pairs.update(address_attributes(client_key))
        pairs.update(parameters)
        name = f"{server_key[0]} {server_key[2]}"
        return span_head(name, CLIENT) + self.encoder.attributes(9, pairs)

    def _client_tail(
        self,
        prompt: int | None,
        completion: int | None,
        finish: str | None,
        model: str | None,
        failed: str | None,
    ) -> bytes:
        pairs: dict[str, Any] = {}
        if prompt is not None:
            pairs["gen_ai.usage.input_tokens"] = prompt
        if completion is not None:
            pairs["gen_ai.usage.output_tokens"] = completion
        if finish:
            pairs["gen_ai.response.finish_reasons"] = (finish,)
        if model:
            pairs["gen_ai.response.model"] = model
        if failed is None:
            return self.encoder.attributes(9, pairs)
        pairs["error.type"] = failed
        return self.encoder.attributes(9, pairs) + (ERROR if failed != CANCELLED else b"")


def _kept(cache: dict[tuple[Any, ...], T], key: tuple[Any, ...], value: T) -> T:
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def http_attributes(http: Http, old: bool) -> dict[str, Any]:
    method, path, route, server, client, scheme, version = http
    found: dict[str, Any] = {
        "http.request.method": method,
        "url.path": path,
        "url.scheme": scheme,
        "network.protocol.version": version,
    }
    if route:
        found["http.route"] = route
    if server:
        found["server.address"], found["server.port"] = server[0], server[1]
    if client:
        found["client.address"] = client
    if old:  # the names from before HTTP's conventions were stable, for http/dup
        found.update({"http.method": method, "http.target": path})
        found["http.scheme"] = scheme
        found["http.flavor"] = version
        if server:
            found["net.host.name"], found["net.host.port"] = server[0], server[1]
        if client:
            found["net.sock.peer.addr"] = client
    return found
