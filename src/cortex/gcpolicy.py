"""How the garbage collector runs in a serving process.

What Córtex builds at start-up (FastAPI's routes, pydantic's validators, the gateway
itself: about 100,000 objects) lives as long as the process, yet every full collection
walked all of it again: one took 100 to 200 ms at concurrency 64, every stream waiting
on it (the p99 of the added time to first chunk), and the collections together cost
about 200 µs a request. Once started, that is cleared of garbage and frozen (left out
of every later collection, still freed by reference counting), and the youngest
generation is collected every ``YOUNG_THRESHOLD`` new container objects instead of
700: a request makes a few hundred, mostly freed by reference counting before any
collection, so fewer, slightly longer young collections cost less in all.

A finished request leaves no loop of references behind (``tests/test_no_cycles.py``):
each one left 29 objects for the collector, and a young collection of 7000 stopped
every stream for about a millisecond. Now 6000 streamed requests, one at a time or 16
at once, run without a single collection.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7000  # measured (bench/instructions.py and the c=64 tail), see above


def settle_after_start() -> None:
    """Collect start-up's garbage, freeze what is left, and space out young collections."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
