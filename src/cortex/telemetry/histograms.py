"""Cumulative histograms with explicit buckets, kept per set of attributes, and their
OTLP form at each export.

The exporter's thread finds a series once (``Histogram.series``, or a set of them kept
together by ``measurements.py``) and a measurement is then ``Series.add`` (a bisection
of the bounds and three updates) or, a batch at a time, an append to ``Series.pending``
and one ``Series.fold``: a sort, a bisection of the batch at each bound, its sum,
its first and last, all in C.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .protobuf import Encoder, histogram

logger = logging.getLogger("cortex")
MAX_SERIES = 1000  # attribute sets per histogram; models are the backends' own, so few


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str
    unit: str
    description: str
    bounds: Sequence[float]


class Series:
    """One attribute set's buckets, used by the exporter's thread alone."""

    __slots__ = ("attributes", "bounds", "counts", "high", "low", "pending", "total")

    def __init__(self, attributes: Mapping[str, Any], bounds: tuple[float, ...]) -> None:
        self.attributes = dict(attributes)
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")
        self.pending: list[float] = []  # measurements not yet in the buckets

    def fold(self) -> None:
        """Add the pending measurements, as ``add`` would one by one."""
        values = self.pending
        if not values:
            return
        values.sort()
        counts, below = self.counts, 0
        for i, bound in enumerate(self.bounds):  # a bucket holds what is <= its bound
            upto = bisect_right(values, bound)
            counts[i] += upto - below
            below = upto
        counts[-1] += len(values) - below
        self.total += sum(values)
        self.low = min(self.low, values[0])
        self.high = max(self.high, values[-1])
        values.clear()

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value


class Histogram:
    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._bounds = tuple(instrument.bounds)
        self._series: dict[Hashable, Series] = {}
        self._started = time.time_ns()
        # Where measurements of attribute sets beyond MAX_SERIES go: counted, never exported.
        self._overflow = Series({}, self._bounds)
        self._full = False

    def series(self, key: Hashable, attributes: Callable[[], Mapping[str, Any]]) -> Series:
        """The series ``key`` names (``attributes()`` are its attributes, asked for once)."""
        found = self._series.get(key)
        if found is None:
            if len(self._series) >= MAX_SERIES:
                if not self._full:
                    self._full = True
                    logger.warning("%s: too many attribute sets", self.instrument.name)
                return self._overflow
            found = self._series[key] = Series(attributes(), self._bounds)
        return found

    def record(
        self, value: float, key: Hashable, attributes: Callable[[], Mapping[str, Any]]
    ) -> None:
        """Add ``value`` to the series ``key`` names."""
        self.series(key, attributes).add(value)

    def encoded(self, encoder: Encoder) -> bytes | None:
        """The histogram as an OTLP Metric, or None before its first measurement."""
        points = [
            (s.attributes, list(s.counts), s.total, s.low, s.high)
            for s in self._series.values()
            if s.low <= s.high  # a series found but not yet measured has no point
        ]
        if not points:
            return None
        i = self.instrument
        return histogram(
            encoder, i.name, i.unit, i.description, i.bounds, points, self._started, time.time_ns()
        )


def encoded(histograms: Sequence[Histogram], encoder: Encoder) -> Iterator[bytes]:
    for h in histograms:
        metric = h.encoded(encoder)
        if metric is not None:
            yield metric
