"""What a connection (``h1.py``) tells its exchange besides an answer or an error: why
the request got no answer, and whether it may be sent again (``http.py`` decides)."""

from __future__ import annotations


class Stale(Exception):
    """A reused connection closed before any of the answer arrived: send it again."""


class Closed(Exception):
    """The server closed the connection without answering."""


class Late(Exception):
    """The answer's head did not arrive in time."""


class Stray(Exception):
    """The server sent bytes after its answer, which no request asked for."""
