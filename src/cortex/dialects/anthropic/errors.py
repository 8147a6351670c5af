"""Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}}``, by HTTP status."""

from __future__ import annotations

from ... import errors
from ...errors import CortexError, anthropic_error_body
from ...errors import anthropic_error_type as error_type

__all__ = ["error_body", "error_event", "error_type", "in_band"]


def error_body(message: str, status: int) -> bytes:
    """An error answered before the response started."""
    return anthropic_error_body(message, status)


def error_event(message: str, status: int = 500) -> bytes:
    """The in-band error after a stream started: an ``error`` event, after which it ends."""
    return in_band(CortexError(message, status=status))


def in_band(exc: CortexError) -> bytes:
    return errors.in_band(exc, "anthropic-sse")
