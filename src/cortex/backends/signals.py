"""What a connection (``h1.py``) tells its exchange besides an answer: why the request got
no answer, and whether it may be sent again (``http.py`` decides); and what an answer the
parser could not read means."""

from __future__ import annotations

import logging

import httptools

from ..errors import CortexError, UpstreamProtocolError

logger = logging.getLogger("cortex.upstream")


class Stale(Exception):
    """A reused connection closed before any of the answer arrived: send it again."""


class Closed(Exception):
    """The server closed the connection without answering."""


class Late(Exception):
    """The answer's head did not arrive in time."""


class Stray(Exception):
    """The server sent bytes after its answer, which no request asked for."""


def parse_failure(exc: Exception) -> CortexError | None:
    """The exchange's error for what the parser raised; None for a ``Stray`` (the
    connection already closed itself)."""
    if isinstance(exc, httptools.HttpParserUpgrade):
        return UpstreamProtocolError("the model server switched protocols")
    if isinstance(exc, httptools.HttpParserCallbackError):
        if isinstance(exc.__context__, Stray):
            return None
        logger.error("relaying an upstream answer failed", exc_info=exc.__context__ or exc)
        return CortexError("internal error in the gateway")
    return UpstreamProtocolError(f"the model server sent an invalid HTTP response ({exc})")
