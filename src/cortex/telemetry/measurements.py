"""The GenAI histograms, fed by the exporter's thread from the records requests hand it
(``records.py``): a request pays for a measurement no more than the value in its tuple.

The series of a target's successful answers are found once and kept together; a failed
one's (with ``error.type``) are looked up by the histogram itself. Only this thread adds
to the histograms and reads them, so an export sees each series whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .genai import Conventions
from .histograms import Series
from .protobuf import SERVER
from .records import (
    Record,
)
from .targets import Instruments, Target, address_attributes, genai_attributes

# A target's series of successful answers: request duration, time to first token and
# per output token (the server's); operation duration, input and output tokens (the client's).
Served = tuple[Series, Series, Series, Series, Series, Series]
Appends = tuple[Callable[[float], None], ...]  # their pending lists' appends
MAX_KEPT = 4096  # targets whose series are kept found; past it the cache starts again


class Measurements:
    def __init__(self, instruments: Instruments, conventions: Conventions) -> None:
        self._instruments = instruments
        self._provider_key = conventions.provider_key
        self._served: dict[Target, Appends] = {}
        self._pending: list[Series] = []  # the series of the targets kept

    def add(self, records: Iterable[Record]) -> None:
        """Each record's measurements, into its target's series."""
        kept = self._served
        for record in records:
            target = record[5]
            if target is None:  # no attempt: no GenAI operation to measure
                continue
            served = kept.get(target)
            if served is None:
                served = self._kept(target)
            attempt = record[7]
            if attempt is not None:
                took, failed = attempt[2] - attempt[1], attempt[8]
                if failed is None:
                    served[3](took)
                    if attempt[4] is not None:
                        served[4](attempt[4])
                    if attempt[5] is not None:
                        served[5](attempt[5])
                else:
                    self._failed_attempt(target, took, failed)
            if record[0] != SERVER:
                continue
            started, ended = record[9], record[10]
            failed = record[13]
            if failed is not None:
                self._failed_request(target, ended - started, failed)
                continue
            served[0](ended - started)
            first = record[14]
            if first is None or not record[6]:
                continue
            served[1](first - started)
            tokens = record[15]
            if tokens is not None and tokens > 1 and ended > first:
                served[2]((ended - first) / (tokens - 1))
        for series in self._pending:
            series.fold()

    def _kept(self, target: Target) -> Appends:
        if len(self._served) >= MAX_KEPT:
            for series in self._pending:
                series.fold()
            self._served.clear()
            self._pending.clear()
        found = self._series(target)
        self._pending.extend(found)
        appends = self._served[target] = tuple(s.pending.append for s in found)
        return appends

    def _genai(self, target: Target) -> dict[str, Any]:
        return genai_attributes(target[0], self._provider_key)

    def _client(self, target: Target, **more: Any) -> dict[str, Any]:
        return {**self._genai(target), **address_attributes(target), **more}

    def _series(self, target: Target) -> Served:
        i, genai = self._instruments, self._genai(target)
        return (
            i.request_duration.series((target[0], None), lambda: genai),
            i.time_to_first_token.series((target[0], None), lambda: genai),
            i.time_per_output_token.series((target[0], None), lambda: genai),
            i.operation_duration.series((target, None), lambda: self._client(target)),
            i.token_usage.series(
                ((target, None), "input"),
                lambda: self._client(target, **{"gen_ai.token.type": "input"}),
            ),
            i.token_usage.series(
                ((target, None), "output"),
                lambda: self._client(target, **{"gen_ai.token.type": "output"}),
            ),
        )

    def _failed_attempt(self, target: Target, took: float, failed: str) -> None:
        attributes = {"error.type": failed}
        self._instruments.operation_duration.record(
            took, (target, failed), lambda: self._client(target, **attributes)
        )

    def _failed_request(self, target: Target, took: float, failed: str) -> None:
        self._instruments.request_duration.record(
            took, (target[0], failed), lambda: {**self._genai(target), "error.type": failed}
        )
