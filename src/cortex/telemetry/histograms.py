"""Cumulative histograms with explicit buckets, kept per set of attributes, and their
OTLP form at each export. A measurement is a bisection and three additions."""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
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


class _Series:
    __slots__ = ("attributes", "counts", "high", "low", "total")

    def __init__(self, attributes: Mapping[str, Any], buckets: int) -> None:
        self.attributes = dict(attributes)
        self.counts = [0] * buckets
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")


class Histogram:
    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._bounds = list(instrument.bounds)
        self._series: dict[Hashable, _Series] = {}
        self._started = time.time_ns()
        self._full = False

    def record(
        self, value: float, key: Hashable, attributes: Callable[[], Mapping[str, Any]]
    ) -> None:
        """Add ``value`` to the series ``key`` names (``attributes()`` are its attributes,
        asked for once). Only the event loop's thread records, so no lock: the exporter's
        copy may catch a series between its count and its sum, one measurement apart."""
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= MAX_SERIES:
                if not self._full:
                    self._full = True
                    logger.warning("%s: too many attribute sets", self.instrument.name)
                return
            series = self._series[key] = _Series(attributes(), len(self._bounds) + 1)
        series.counts[bisect_left(self._bounds, value)] += 1
        series.total += value
        if value < series.low:
            series.low = value
        if value > series.high:
            series.high = value

    def encoded(self, encoder: Encoder) -> bytes | None:
        """The histogram as an OTLP Metric, or None before its first measurement."""
        points = [
            (s.attributes, list(s.counts), s.total, s.low, s.high)
            for s in list(self._series.values())  # a copy: the event loop may add one
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
