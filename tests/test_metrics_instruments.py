"""Córtex's plain-number instruments show at a scrape what prometheus_client's own show."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric

from cortex.observe.instruments import CounterSeries, HistogramSeries

BUCKETS = (0.005, 0.01, 0.5, 1, 2.5, 300)
LABELS = st.sampled_from([("a", "x"), ("b", "x"), ("a", "y")])


class Families:
    def __init__(self, *instruments: CounterSeries | HistogramSeries) -> None:
        self._instruments = instruments

    def collect(self) -> list[Metric]:
        return [instrument.family() for instrument in self._instruments]


def scraped(registry: CollectorRegistry) -> str:
    """The exposition, with the ``_created`` times (which differ by a few µs) blanked."""
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())


values = st.one_of(
    st.sampled_from([0.0, *BUCKETS]),  # on a bound: in that bucket (le is "at most")
    st.floats(min_value=0, max_value=1000, allow_nan=False),
)


@given(st.lists(st.tuples(LABELS, values), max_size=30))
def test_a_histogram_scrapes_as_prometheus_clients_does(observed: list) -> None:
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Histogram("h_seconds", "help", ["k", "m"], buckets=BUCKETS, registry=theirs_registry)
    alone = Histogram("w_seconds", "help", buckets=BUCKETS, registry=theirs_registry)
    ours = HistogramSeries("h_seconds", "help", BUCKETS, ["k", "m"])
    ours_alone = HistogramSeries("w_seconds", "help", BUCKETS)
    for labels, value in observed:
        theirs.labels(*labels).observe(value)
        ours.observe(labels, value)
        alone.observe(value)
        ours_alone.observe((), value)
    ours_registry.register(Families(ours, ours_alone))
    assert scraped(ours_registry) == scraped(theirs_registry)


@given(st.lists(st.tuples(LABELS, st.integers(min_value=1, max_value=10**6)), max_size=30))
def test_a_counter_scrapes_as_prometheus_clients_does(increments: list) -> None:
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Counter("c", "help", ["k", "m"], registry=theirs_registry)
    ours = CounterSeries("c", "help", ["k", "m"])
    for labels, amount in increments:
        theirs.labels(*labels).inc(amount)
        ours.inc(labels, amount)
    ours_registry.register(Families(ours))
    assert scraped(ours_registry) == scraped(theirs_registry)


def test_an_unlabelled_histogram_is_scraped_before_its_first_observation() -> None:
    registry = CollectorRegistry()
    registry.register(Families(HistogramSeries("w_seconds", "help", BUCKETS)))
    text = scraped(registry)
    assert 'w_seconds_bucket{le="+Inf"} 0.0' in text
    assert "w_seconds_count 0.0" in text and "w_seconds_created T" in text
