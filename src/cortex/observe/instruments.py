"""Counters and histograms kept as plain numbers, turned into Prometheus families at a scrape.

A request ends with half a dozen updates. Through ``prometheus_client``'s own instruments
each was four or five Python calls and a lock (forty calls a request, more than any other
part of a request's end); here each is one call and a dict update. Every update comes from
the event loop's thread, so there is nothing to lock; a scrape runs on the same thread.
What a scrape shows is what ``prometheus_client``'s instruments showed: the same families,
samples, bucket bounds and ``_created`` series (``tests/test_metrics_instruments.py``).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]


class CounterSeries:
    """A counter: a value for each combination of label values seen."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self._values: dict[Labels, float] = {}
        self._created: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self._values
        if labels in values:
            values[labels] += amount
        else:
            values[labels] = float(amount)
            self._created[labels] = time.time()

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self._values.items():
            family.add_metric(labels, value, created=self._created[labels])
        return family


class HistogramSeries:
    """A histogram: bucket counts and a sum for each combination of label values seen
    (without labels: one series, there from the start, as ``prometheus_client`` has it)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self._bounds = (*buckets, float("inf"))
        self._les = [floatToGoString(bound) for bound in self._bounds]  # type: ignore[no-untyped-call]
        self._series: dict[Labels, list[float]] = {}  # a count per bucket, then the sum
        self._created: dict[Labels, float] = {}
        if not self.labels:
            self._open(())

    def observe(self, labels: Labels, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._open(labels)
        series[bisect_left(self._bounds, value)] += 1  # the first bound at or above it
        series[-1] += value

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, series in self._series.items():
            cumulative, buckets = 0.0, []
            for le, count in zip(self._les, series[:-1], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(labels, buckets, series[-1])
            named = dict(zip(self.labels, labels, strict=True))
            family.add_sample(self.name + "_created", named, self._created[labels])
        return family

    def _open(self, labels: Labels) -> list[float]:
        series = self._series[labels] = [0.0] * (len(self._bounds) + 1)
        self._created[labels] = time.time()
        return series
