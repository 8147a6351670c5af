"""OTLP's protobuf messages, written by hand: the few Córtex sends, and nothing else.

Protobuf's wire format is tags, varints, fixed-width numbers and length-prefixed
bytes; the field numbers are opentelemetry-proto's (``trace/v1/trace.proto``,
``metrics/v1/metrics.proto``, ``common/v1/common.proto``), and the tests decode
what is written here with opentelemetry-proto's own classes. Written by hand
because the SDK's objects and encoder cost a request more CPU than all of
Córtex's own work (docs/observability.md has the measurement).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
SERVER, CLIENT = 2, 3  # Span.SpanKind
STATUS_ERROR = 2  # Status.StatusCode
CUMULATIVE = 2  # AggregationTemporality

_double = struct.Struct("<d").pack
_fixed64 = struct.Struct("<Q").pack
CACHE_MAX = 4096  # attribute pairs kept encoded; names and values of few kinds repeat


def varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # an int64's two's complement, as protobuf writes it
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def length_delimited(field: int, payload: bytes) -> bytes:
    return tag(field, LENGTH) + varint(len(payload)) + payload


def string(field: int, text: str) -> bytes:
    return length_delimited(field, text.encode())


def fixed64(field: int, value: int) -> bytes:
    return tag(field, FIXED64) + _fixed64(value)


def double(field: int, value: float) -> bytes:
    return tag(field, FIXED64) + _double(value)


def any_value(value: Any) -> bytes:
    """An AnyValue: string 1, bool 2, int 3, double 4, array 5."""
    if isinstance(value, str):
        return string(1, value)
    if isinstance(value, bool):
        return tag(2, VARINT) + varint(int(value))
    if isinstance(value, int):
        return tag(3, VARINT) + varint(value)
    if isinstance(value, float):
        return double(4, value)
    if isinstance(value, tuple | list):
        items = b"".join(length_delimited(1, any_value(v)) for v in value)
        return length_delimited(5, items)
    return string(1, str(value))


class Encoder:
    """Attributes written once and kept, since names and values of few kinds repeat
    (by type too: ``True == 1 == 1.0`` to a dict, not to protobuf)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], bytes] = {}

    def key_value(self, field: int, key: str, value: Any) -> bytes:
        """A KeyValue (key 1, value 2) as field ``field`` of its message."""
        cache_key = (field, key, value, type(value))
        cached = self._cache.get(cache_key)
        if cached is None:
            pair = string(1, key) + length_delimited(2, any_value(value))
            cached = length_delimited(field, pair)
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[cache_key] = cached
        return cached

    def attributes(self, field: int, pairs: Mapping[str, Any]) -> bytes:
        return b"".join([self.key_value(field, k, v) for k, v in pairs.items()])


ERROR = b"\x7a\x02\x18\x02"  # a Span's 15: status, its code 3 = ERROR
# A Span's fixed-size fields, with their tags: trace_id (1), span_id (2), the parent's
# (4) when it has one, start_time_unix_nano (7), end_time_unix_nano (8), packed in one
# piece (protobuf reads fields in any order).
ROOT_FIXED, CHILD_FIXED = "H16sH8sBQBQ", "H16sH8sH8sBQBQ"  # a struct's formats, less "<"
ROOT_SIZE, CHILD_SIZE = 46, 56  # their sizes
_ROOT = struct.Struct("<" + ROOT_FIXED).pack
_CHILD = struct.Struct("<" + CHILD_FIXED).pack
# The tags of those fields, as struct packs them.
TRACE_ID, SPAN_ID, PARENT_ID, START_TAG, END_TAG = 0x100A, 0x0812, 0x0822, 0x39, 0x41
SPAN_TAG = b"\x12"  # a Span is field 2 of its ScopeSpans
SIZES = tuple(varint(n) for n in range(2048))  # lengths, written once: spans are short


def span_head(name: str, kind: int) -> bytes:
    """A Span's fields 5 and 6: name and kind."""
    return string(5, name) + tag(6, VARINT) + varint(kind)


def span_fixed(trace: bytes, own: bytes, parent: bytes | None, start: int, end: int) -> bytes:
    """A Span's ids and times (fields 1, 2, 4, 7 and 8), the ids as 16 and 8 bytes."""
    if parent:
        return _CHILD(
            TRACE_ID, trace, SPAN_ID, own, PARENT_ID, parent, START_TAG, start, END_TAG, end
        )
    return _ROOT(TRACE_ID, trace, SPAN_ID, own, START_TAG, start, END_TAG, end)


def trace_state(state: str) -> bytes:
    """A Span's field 3, its ``tracestate`` (nothing when it has none)."""
    if not state:
        return b""
    encoded = state.encode("latin-1")
    return b"\x1a" + varint(len(encoded)) + encoded


def span(fixed: bytes, head: bytes, tail: bytes) -> tuple[bytes, ...]:
    """One Span, as field 2 of its ScopeSpans, in pieces to join: ``fixed``
    (``span_fixed``), ``head`` (``span_head`` and attributes that come together) and
    ``tail`` (the other attributes, and field 15, its status, for an error)."""
    size = len(fixed) + len(head) + len(tail)
    return SPAN_TAG, SIZES[size] if size < 2048 else varint(size), fixed, head, tail


def scope(name: str, version: str) -> bytes:
    """An InstrumentationScope (name 1, version 2), as field 1 of its ScopeSpans/ScopeMetrics."""
    return length_delimited(1, string(1, name) + string(2, version))


def export_request(resource: bytes, scope_: bytes, items: Iterable[bytes]) -> bytes:
    """ExportTraceServiceRequest or ExportMetricsServiceRequest, which share a shape: one
    Resource{Spans,Metrics} (resource 1, scope's 2) with one Scope{Spans,Metrics}
    (scope 1, its spans or metrics 2), as field 1."""
    scoped = length_delimited(2, scope_ + b"".join(items))
    return length_delimited(1, length_delimited(1, resource) + scoped)


def resource(pairs: Mapping[str, Any]) -> bytes:
    return Encoder().attributes(1, pairs)


def histogram(
    encoder: Encoder,
    name: str,
    unit: str,
    description: str,
    bounds: Sequence[float],
    points: Iterable[tuple[Mapping[str, Any], Sequence[int], float, float, float]],
    start_ns: int,
    now_ns: int,
) -> bytes:
    """A Metric (name 1, description 2, unit 3) holding a cumulative Histogram (9): each
    point is its attributes, bucket counts, sum, min and max."""
    packed_bounds = length_delimited(7, b"".join(_double(b) for b in bounds))
    data = []
    for pairs, counts, total, low, high in points:
        point = [fixed64(2, start_ns), fixed64(3, now_ns), fixed64(4, sum(counts))]
        point += [double(5, total), length_delimited(6, b"".join(_fixed64(c) for c in counts))]
        point += [packed_bounds, encoder.attributes(9, pairs), double(11, low), double(12, high)]
        data.append(length_delimited(1, b"".join(point)))
    body = b"".join(data) + tag(2, VARINT) + varint(CUMULATIVE)
    metric = string(1, name) + string(2, description) + string(3, unit)
    return length_delimited(2, metric + length_delimited(9, body))
