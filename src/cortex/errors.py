"""One exception tree for every failure Córtex reports to a client.

    CortexError                       500
    ├── BadRequest                    400  the client's request is malformed
    │   ├── BodyTooLarge              413
    │   └── ContextTooLong            400  the prompt does not fit in the model's context
    ├── Unauthorized                  401  no API key, or not a valid one
    ├── ModelNotAllowed               403  the key may not use this model
    ├── NotFound                      404
    │   └── ModelNotFound
    ├── RateLimited                   429  a per-key limit is reached (Retry-After)
    │   └── LimitsUnavailable         503  limits cannot be checked (Redis down, closed policy)
    ├── Overloaded                    503  every backend busy or unhealthy (Retry-After)
    └── UpstreamError                 502  the model server failed us
        ├── UpstreamUnreachable       502  refused, DNS failure, reset before an answer
        ├── UpstreamStatus            (the upstream's own 4xx/5xx status)
        ├── UpstreamProtocolError     502  not JSON, line too long, unexpected shape
        ├── UpstreamIncomplete        502  the answer ended without its final message
        ├── ModelProcessDied          503  the embedded model's process died (it restarts)
        └── UpstreamTimeout           504
            ├── ConnectTimeout
            ├── FirstByteTimeout
            └── IdleTimeout

Each class carries its HTTP status, whether another backend may be tried
(``retryable``: the fault is the backend's) and how the access log names the
end (``outcome``). Before a response has started, ``reply`` turns any error
into its status, headers and a body in the client's dialect; once a stream has
started, ``in_band`` turns it into the framing's final error frame.
Messages never contain upstream addresses or secrets: those go to the log.
"""

from __future__ import annotations

import math
from typing import Literal

import orjson
from starlette.responses import Response

from .observe.record import Outcome

# A client's API: Ollama's, OpenAI's chat completions, Anthropic's Messages, OpenAI's Responses.
Dialect = Literal["ollama", "openai", "anthropic", "responses"]
# How a started stream is framed: Ollama's NDJSON, Ollama's lines as SSE, OpenAI's SSE,
# Anthropic's named events.
StreamFraming = Literal["ndjson", "sse", "openai-sse", "anthropic-sse", "responses-sse"]
RawHeaders = list[tuple[bytes, bytes]]


class CortexError(Exception):
    status = 500
    retry_after: int | None = None  # seconds, sent as Retry-After
    code: str | None = None  # OpenAI's error code, where one applies

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def retryable(self) -> bool:
        """The backend is at fault: another one may answer (and its circuit counts it)."""
        return False

    @property
    def outcome(self) -> Outcome:
        return "upstream-error" if self.status >= 500 else "rejected"


class BadRequest(CortexError):
    status = 400


class BodyTooLarge(BadRequest):
    status = 413


class ContextTooLong(BadRequest):
    code = "context_length_exceeded"  # OpenAI's, which agents read as not worth a retry


class NotFound(CortexError):
    status = 404


class ModelNotFound(NotFound):
    code = "model_not_found"


class Unauthorized(CortexError):
    status = 401


class ModelNotAllowed(CortexError):
    status = 403


class Overloaded(CortexError):
    status = 503

    def __init__(self, message: str, retry_after: float, queue_position: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, round(retry_after))
        self.queue_position = queue_position


class RateLimited(CortexError):
    status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class LimitsUnavailable(RateLimited):
    status = 503


class UpstreamError(CortexError):
    status = 502

    @property
    def outcome(self) -> Outcome:
        return "upstream-error"


class UpstreamUnreachable(UpstreamError):
    @property
    def retryable(self) -> bool:
        return True


class UpstreamStatus(UpstreamError):
    """The model server answered with an error status; the status is passed on."""

    @property
    def retryable(self) -> bool:
        return self.status >= 500


class UpstreamProtocolError(UpstreamError):
    @property
    def retryable(self) -> bool:
        return True


class UpstreamIncomplete(UpstreamError):
    @property
    def retryable(self) -> bool:
        return True


class ModelProcessDied(UpstreamError):
    status = 503


class UpstreamTimeout(UpstreamError):
    status = 504

    @property
    def retryable(self) -> bool:
        return True

    @property
    def outcome(self) -> Outcome:
        return "timeout"


class ConnectTimeout(UpstreamTimeout):
    pass


class FirstByteTimeout(UpstreamTimeout):
    pass


class IdleTimeout(UpstreamTimeout):
    pass


def ollama_error_body(message: str, status: int = 500) -> bytes:
    """Ollama's error shape: ``{"error": "..."}``."""
    return orjson.dumps({"error": message})


OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(message: str, status: int = 500, code: str | None = None) -> bytes:
    """OpenAI's error shape, whose ``type`` follows the status as OpenAI's does."""
    error_type = OPENAI_ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    return orjson.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    )


# As Anthropic's error reference lists them; other 4xx are invalid_request_error there too.
ANTHROPIC_ERROR_TYPES = {
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


def anthropic_error_type(status: int) -> str:
    """Anthropic's ``error.type`` for a status; 502 and other 5xx are ``api_error``."""
    fallback = "api_error" if status >= 500 else "invalid_request_error"
    return ANTHROPIC_ERROR_TYPES.get(status, fallback)


def anthropic_error_body(message: str, status: int = 500) -> bytes:
    """Anthropic's error shape."""
    error = {"type": anthropic_error_type(status), "message": message}
    return orjson.dumps({"type": "error", "error": error})


def dialect_of(path: str) -> Dialect:
    """The dialect a client speaks, by the path it called."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/responses"):
        return "responses"
    return "openai" if path.startswith("/v1/") else "ollama"


def reply(exc: CortexError, dialect: Dialect) -> tuple[int, RawHeaders, bytes]:
    """An error answered before any response started: its status, headers and body."""
    if dialect in ("openai", "responses"):
        body = openai_error_body(exc.message, exc.status, exc.code)
    elif dialect == "anthropic":
        body = anthropic_error_body(exc.message, exc.status)
    else:
        body = ollama_error_body(exc.message, exc.status)
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    if isinstance(exc, Overloaded) and exc.queue_position is not None:
        headers.append((b"x-cortex-queue-position", str(exc.queue_position).encode()))
    if isinstance(exc, Unauthorized):  # not a model server's 401: Córtex's key is not asked
        headers.append((b"www-authenticate", b'Bearer realm="cortex"'))
    return exc.status, headers, body


def error_response(exc: CortexError, path: str) -> Response:
    """``reply`` as a Starlette response, in the dialect of the path called."""
    status, headers, body = reply(exc, dialect_of(path))
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def in_band(exc: CortexError, framing: StreamFraming) -> bytes:
    """An error after the response started: the stream's last frame, in its framing."""
    if framing == "openai-sse":
        return b"data: " + openai_error_body(exc.message, exc.status, exc.code) + b"\n\n"
    if framing == "responses-sse":
        error = {"type": "error", "code": exc.code or "server_error", "message": exc.message}
        return b"event: error\ndata: " + orjson.dumps({**error, "sequence_number": 0}) + b"\n\n"
    if framing == "anthropic-sse":
        return b"event: error\ndata: " + anthropic_error_body(exc.message, exc.status) + b"\n\n"
    line = ollama_error_body(exc.message)
    return line + b"\n" if framing == "ndjson" else b"event: error\ndata: " + line + b"\n\n"
