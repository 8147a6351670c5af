"""What a request hands the exporter as it ends, a plain tuple of what varies (its
SERVER span, the CLIENT span of its attempt, their measurements), and the spans' OTLP
encoding, done later by the exporter's thread (``SpanWriter``), a batch at a time, with
the attributes that repeat (a route's, a target's) written once and kept.

A tuple costs the request path a fraction of a microsecond; encoding it costs the
thread about one a span, less than building the span's attributes on the request path
did, because nothing is built again for values seen before (docs/observability.md).
Times are the monotonic clock's seconds, as the request path reads them; the thread
makes them Unix nanoseconds with one offset a batch (``clock_offset``), as the Java
SDK anchors its spans, so that a span's duration is the monotonic clock's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, TypeVar

from .genai import CANCELLED, Conventions
from .protobuf import (
    CACHE_MAX,
    CLIENT,
    ERROR,
    SERVER,
    SIZES,
    SPAN_TAG,
    Encoder,
    span_fixed,
    span_head,
    trace_state,
    varint,
)
from .targets import address_attributes, genai_attributes

T = TypeVar("T")
Parameters = tuple[tuple[str, Any], ...]  # gen_ai.request.*, as (name, value) pairs
# (method, path, route, server (host, port), client host, scheme, HTTP version)
Http = tuple[str, str, str | None, Any, str | None, str, str]
# An attempt, once it ended: its span id, start and end, the request parameters, input
# and output tokens, finish reason, response model, error.type.
AttemptRecord = tuple[
    int, float, float, Parameters, int | None, int | None, str | None, str | None, str | None
]
# Every record starts with: CLIENT or SERVER, sampled, trace id, the SERVER span's id,
# tracestate, the attempt's target (``Targets.find``, None without one), whether the
# client asked for a stream, and the attempt (None without one). A CLIENT record is
# that alone (an attempt a failover followed, or one that ended after its request); a
# SERVER record goes on: the parent span id (the client's, 8 bytes, or None), start and
# end, the HTTP attributes (None when not sampled), status, error.type, first token's
# time and output tokens. Only strings, numbers, None and tuples of them: Python's
# garbage collector stops tracking such tuples at once, so waiting records cost it nothing.
Record = tuple[Any, ...]
KIND, SAMPLED, TRACE_ID, SPAN_ID, STATE, TARGET, STREAMED, ATTEMPT = range(8)
PARENT, START, END, HTTP, STATUS, FAILED, FIRST_TOKEN, OUTPUT_TOKENS = range(8, 16)


def clock_offset() -> int:
    """What turns the monotonic clock's nanoseconds into Unix ones, now."""
    return time.time_ns() - time.monotonic_ns()


class SpanWriter:
    """Encodes the spans of sampled records; used by the exporter's thread only. What
    repeats is written once and kept: a span's name, kind and the attributes that come
    together (a route's; a target's with its request parameters), and the attributes
    that end it (status, token counts, finish, error)."""

    def __init__(self, conventions: Conventions) -> None:
        self.encoder = Encoder()
        self._old_http = conventions.old_http
        self._provider_key = conventions.provider_key
        self._heads: dict[tuple[Any, ...], bytes] = {}
        self._tails: dict[tuple[Any, ...], bytes] = {}

    def encoded(self, records: Iterable[Record], offset: int) -> bytes:
        """The sampled records' Spans (as ``protobuf.span`` writes one) one after
        another, in one loop: a batch shares the caches, and the spans are joined once.
        ``offset``: the ``clock_offset`` of the batch."""
        heads, tails = self._heads, self._tails
        pieces: list[bytes] = []
        for record in records:
            if not record[1]:  # not sampled
                continue
            trace, server = record[2].to_bytes(16, "big"), record[3].to_bytes(8, "big")
            state = trace_state(record[4]) if record[4] else b""
            attempt = record[7]
            if attempt is not None:
                span_id, start, end, parameters = attempt[:4]
                key = (record[5], parameters)
                head = heads.get(key)
                if head is None:
                    head = _kept(heads, key, self._target_head(*key))
                ending = attempt[4:]
                tail = tails.get(ending)
                if tail is None:
                    tail = _kept(tails, ending, self._client_tail(*ending))
                own = span_id.to_bytes(8, "big")
                start, end = offset + int(start * 1e9), offset + int(end * 1e9)
                fixed = span_fixed(trace, own, server, start, end) + state
                size = len(fixed) + len(head) + len(tail)
                pieces += (
                    SPAN_TAG,
                    SIZES[size] if size < 2048 else varint(size),
                    fixed,
                    head,
                    tail,
                )
            if record[0] == SERVER:
                parent, start, end, http, status, failed = record[8:14]
                shape = (http, status, failed)
                rest = heads.get(shape)  # name, kind and every attribute
                if rest is None:
                    rest = self._http_head(http) + self._server_tail(status, failed)
                    rest = _kept(heads, shape, rest)
                start, end = offset + int(start * 1e9), offset + int(end * 1e9)
                fixed = span_fixed(trace, server, parent, start, end) + state
                size = len(fixed) + len(rest)
                pieces += (SPAN_TAG, SIZES[size] if size < 2048 else varint(size), fixed, rest)
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
