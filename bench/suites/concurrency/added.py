"""What a gateway adds: its samples paired with the direct ones of the same round.

Added is a percentile of the gateway's samples minus the same percentile of the direct
samples (AIGatewayBench's gateway − direct), pooled over the rounds and, so that one
disturbed round does not decide it, as the median of each round's own difference.
Inter-chunk gaps are the times between consecutive tokens of one stream as the client
received them; their added percentiles are the jitter a gateway brings.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from itertools import pairwise

from harness.stats import percentile


def gaps(arrivals: Sequence[float]) -> list[float]:
    """The times between consecutive token arrivals of one stream (the first token's own
    wait is its time to first token, not a gap)."""
    return [b - a for a, b in pairwise(arrivals)]


def pooled_gaps(streams: Iterable[Sequence[float]]) -> list[float]:
    """The gaps of every stream, one list."""
    return [gap for arrivals in streams for gap in gaps(arrivals)]


def added(direct: Sequence[float], gateway: Sequence[float], q: float) -> float:
    """The gateway's q-th percentile minus the direct one's, in the samples' unit."""
    if not direct or not gateway:
        raise ValueError("added needs samples on both sides")
    return percentile(gateway, q) - percentile(direct, q)


def paired(
    direct: Sequence[Sequence[float]], gateway: Sequence[Sequence[float]], q: float
) -> dict[str, float]:
    """The gateway's added q-th percentile from samples kept per round (the i-th round of
    each side measured in the same round): pooled over the rounds, and the median of the
    rounds' own figures."""
    if len(direct) != len(gateway) or not direct:
        raise ValueError(f"{len(direct)} direct rounds paired with {len(gateway)} gateway ones")
    pooled_direct = [x for round_ in direct for x in round_]
    pooled_gateway = [x for round_ in gateway for x in round_]
    per_round = [added(d, g, q) for d, g in zip(direct, gateway, strict=True)]
    return {
        "pooled": added(pooled_direct, pooled_gateway, q),
        "median_of_rounds": statistics.median(per_round),
        "direct": percentile(pooled_direct, q),
        "gateway": percentile(pooled_gateway, q),
    }
