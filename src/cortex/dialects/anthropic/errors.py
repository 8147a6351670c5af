"""Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}}``, by HTTP status."""

from __future__ import annotations

import orjson

from ...errors import CortexError

# As Anthropic's error reference lists them; other 4xx are invalid_request_error there too.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",  # Córtex's "every backend busy" is Anthropic's overload
    504: "timeout_error",  # the SDK's GatewayTimeoutError
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """The ``error.type`` for a status: 502 and other 5xx are ``api_error``."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(message: str, status: int) -> bytes:
    """An error answered before the response started."""
    error = {"type": error_type(status), "message": message}
    return orjson.dumps({"type": "error", "error": error})


def error_event(message: str, status: int = 500) -> bytes:
    """The in-band error after a stream started: an ``error`` event, after which it ends."""
    return b"event: error\ndata: " + error_body(message, status) + b"\n\n"


def in_band(exc: CortexError) -> bytes:
    return error_event(exc.message, exc.status)
