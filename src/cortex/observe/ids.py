"""Random request ids in UUID version 4 form, drawn from the system's random source in bulk.

``str(uuid.uuid4())`` asks the kernel for 16 bytes and builds a ``UUID`` object on every
request; one ``os.urandom`` call here serves 256 ids. A forked child starts with a fresh
batch, so two processes never hand out the same ids.
"""

from __future__ import annotations

import os

BATCH = 256


class _Batch:
    def __init__(self) -> None:
        self.random = b""
        self.at = 0


_batch = _Batch()


def new_uuid4() -> str:
    """A random UUID (version 4, RFC 9562) as 36 characters, like ``str(uuid.uuid4())``."""
    batch = _batch
    at = batch.at
    if at >= len(batch.random):
        batch.random, at = os.urandom(16 * BATCH), 0
    batch.at = at + 16
    raw = bytearray(batch.random[at : at + 16])
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC's variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _forget() -> None:
    _batch.random, _batch.at = b"", 0


os.register_at_fork(after_in_child=_forget)
