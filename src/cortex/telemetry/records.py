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

import struct
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .genai import CANCELLED, Conventions
from .protobuf import (
    CACHE_MAX,
    CHILD_FIXED,
    CHILD_SIZE,
    CLIENT,
    END_TAG,
    ERROR,
    PARENT_ID,
    ROOT_FIXED,
    ROOT_SIZE,
    SERVER,
    SPAN_ID,
    SPAN_TAG,
    START_TAG,
    TRACE_ID,
    Encoder,
    span,
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
# tracestate, the attempt's target (``targets.Targets``, None without one), whether the
# client asked for a stream, and the attempt (None without one). A CLIENT record is
# that alone (an attempt a failover followed, or one that ended after its request); a
# SERVER record goes on: the parent span id (the client's, 8 bytes, or None), start and
# end, the HTTP attributes (None when not sampled), status, error.type, first token's
# time and output tokens. Only strings, numbers, None and tuples of them: Python's
# garbage collector stops tracking such tuples at once, so waiting records cost it nothing.
Record = tuple[Any, ...]
# How a SERVER record with its attempt is written (``SpanWriter._pair``).
Pair = tuple[Callable[..., bytes], bytes, bytes, bytes, bytes]
KIND, SAMPLED, TRACE_ID_AT, SPAN_ID_AT, STATE, TARGET, STREAMED, ATTEMPT = range(8)
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
        self._pairs: dict[tuple[Any, ...], Pair] = {}

    def encoded(self, records: Iterable[Record], offset: int) -> bytes:
        """The sampled records' Spans (as ``protobuf.span`` writes one) one after
        another, in one loop: a batch shares the caches, and the spans are joined once.
        ``offset``: the ``clock_offset`` of the batch.

        A SERVER record with its attempt (most are) is written in one ``struct`` call:
        its two spans differ from those of every record of the same shape (target,
        parameters, ending, HTTP attributes, status) only in their ids and times."""
        pairs = self._pairs
        pieces: list[bytes] = []
        for record in records:
            if not record[1]:  # not sampled
                continue
            attempt = record[7]
            if attempt is None or record[0] != SERVER:
                pieces.append(self._alone(record, offset))
                continue
            parent = record[8]
            shape = (record[5], attempt[3:], record[4], parent, record[11:14])
            pair = pairs.get(shape)
            if pair is None:
                pair = _kept(pairs, shape, self._pair(record))
            pack, before, client, between, server_rest = pair
            trace, server = record[2].to_bytes(16), record[3].to_bytes(8)
            own = attempt[0].to_bytes(8)
            starts, ends = offset + int(attempt[1] * 1e9), offset + int(attempt[2] * 1e9)
            start, end = offset + int(record[9] * 1e9), offset + int(record[10] * 1e9)
            if parent is None:
                packed = pack(
                    before, TRACE_ID, trace, SPAN_ID, own, PARENT_ID, server, START_TAG, starts,
                    END_TAG, ends, client,
                    between, TRACE_ID, trace, SPAN_ID, server, START_TAG, start, END_TAG, end,
                    server_rest,
                )  # fmt: skip
            else:
                packed = pack(
                    before, TRACE_ID, trace, SPAN_ID, own, PARENT_ID, server, START_TAG, starts,
                    END_TAG, ends, client,
                    between, TRACE_ID, trace, SPAN_ID, server, PARENT_ID, parent, START_TAG, start,
                    END_TAG, end, server_rest,
                )  # fmt: skip
            pieces.append(packed)
        return b"".join(pieces)

    def _pair(self, record: Record) -> Pair:
        """How a SERVER record with its attempt is written: a struct and the bytes it
        puts around the ids and times."""
        state = trace_state(record[STATE])
        attempt = record[ATTEMPT]
        client = state + self._client_rest(record[TARGET], attempt)
        server = state + self._server_rest(*record[HTTP:FIRST_TOKEN])
        before = SPAN_TAG + varint(CHILD_SIZE + len(client))
        fixed, size = (
            (ROOT_FIXED, ROOT_SIZE) if record[PARENT] is None else (CHILD_FIXED, CHILD_SIZE)
        )
        between = SPAN_TAG + varint(size + len(server))
        layout = f"<{len(before)}s{CHILD_FIXED}{len(client)}s{len(between)}s{fixed}{len(server)}s"
        return struct.Struct(layout).pack, before, client, between, server

    def _alone(self, record: Record, offset: int) -> bytes:
        """The spans of any other record: a CLIENT one, or a SERVER one without attempt."""
        trace, server = (
            record[TRACE_ID_AT].to_bytes(16),
            record[SPAN_ID_AT].to_bytes(8),
        )
        state = trace_state(record[STATE])
        spans: list[bytes] = []
        attempt = record[ATTEMPT]
        if attempt is not None:
            own = attempt[0].to_bytes(8)
            start, end = offset + int(attempt[1] * 1e9), offset + int(attempt[2] * 1e9)
            fixed = span_fixed(trace, own, server, start, end) + state
            spans += span(fixed, self._client_rest(record[TARGET], attempt), b"")
        if record[KIND] == SERVER:
            start, end = offset + int(record[START] * 1e9), offset + int(record[END] * 1e9)
            fixed = span_fixed(trace, server, record[PARENT], start, end) + state
            spans += span(fixed, self._server_rest(*record[HTTP:FIRST_TOKEN]), b"")
        return b"".join(spans)

    def _client_rest(self, target: Any, attempt: AttemptRecord) -> bytes:
        """A CLIENT span's name, kind, attributes and status."""
        key = (target, attempt[3])
        head = self._heads.get(key)
        if head is None:
            head = _kept(self._heads, key, self._target_head(*key))
        ending = attempt[4:]
        tail = self._tails.get(ending)
        if tail is None:
            tail = _kept(self._tails, ending, self._client_tail(*ending))
        return head + tail

    def _server_rest(self, http: Http, status: int, failed: str | None) -> bytes:
        """A SERVER span's name, kind, attributes and status."""
        return self._http_head(http) + self._server_tail(status, failed)

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
