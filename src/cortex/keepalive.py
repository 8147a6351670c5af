"""Ollama's ``keep_alive``: its durations, and the cap or override a backend puts on them.

Ollama reads ``keep_alive`` as a number of seconds or a Go duration string ("5m",
"1h30m", "-1m"); anything negative keeps the model loaded forever. One client's
``-1`` would pin its model and starve every other, so a backend may cap the time
(``keep_alive_max``) or set it for every request (``keep_alive_override``).
"""

from __future__ import annotations

import math
import re
from typing import Any

FOREVER = math.inf
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration (``time.ParseDuration``); None if Go would refuse it."""
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.removeprefix("+"))
    if body == "0":
        return 0.0
    if not body:
        return None
    total, at = 0.0, 0
    while at < len(body):
        part = _PART.match(body, at)
        if part is None:
            return None
        total += float(part.group(1)) * _UNITS[part.group(2)]
        at = part.end()
    return sign * total


def requested(value: Any) -> float | None:
    """Seconds a client's ``keep_alive`` asks for, read as Ollama reads it (negative:
    ``FOREVER``); None for a value Ollama refuses, which is left for it to refuse."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        parsed = go_duration(value)
        if parsed is None:
            return None
        number = parsed
    else:
        return None
    return FOREVER if number < 0 else number


def seconds(value: str | float) -> float | None:
    """Seconds of a configured duration: as a client's, or a bare number in a string (as
    an environment variable gives it)."""
    if isinstance(value, str):
        try:
            return requested(float(value))
        except ValueError:
            pass
    return requested(value)


def as_sent(value: str | float) -> str | float | int:
    """A configured duration as Ollama will read it: numbers as numbers."""
    if isinstance(value, str) and go_duration(value) is None:
        number = float(value)
        return int(number) if number.is_integer() else number
    return value


def policed(
    payload: dict[str, Any], cap: str | float | None, override: str | float | None
) -> dict[str, Any] | None:
    """The request with its ``keep_alive`` overridden or capped; None when it stands as is.

    A request that names no ``keep_alive`` gets the server's own default, unless there
    is an override.
    """
    if override is not None:
        wanted = as_sent(override)
        if payload.get("keep_alive") == wanted and "keep_alive" in payload:
            return None
        return {**payload, "keep_alive": wanted}
    if cap is None or "keep_alive" not in payload:
        return None
    asked, limit = requested(payload["keep_alive"]), seconds(cap)
    if asked is None or limit is None or asked <= limit:
        return None
    return {**payload, "keep_alive": as_sent(cap)}
