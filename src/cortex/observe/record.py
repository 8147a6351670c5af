"""What one request did, for the access log and the metrics.

The record of the request in progress is reachable anywhere in its task tree
through a context variable, so the relay and the backends can fill it in
without being handed it.
"""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from .ids import new_uuid4

Outcome = Literal["done", "client-cancelled", "upstream-error", "timeout", "rejected", "error"]

access_log = logging.getLogger("cortex.access")
SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class RequestRecord:
    id: str
    method: str
    path: str
    started: float = field(default_factory=time.monotonic)
    status: int = 0
    model: str | None = None
    key: str | None = None  # the API key's name, never the key
    backend: str | None = None
    first_token: float | None = None
    queue_wait: float = 0.0
    body_wait: float = 0.0  # the time its body took to arrive after its head (the client's)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    outcome: Outcome | None = None
    relayed: bool = False  # a model answer, not a metadata call

    def fields(self, ended: float) -> dict[str, Any]:
        return {
            "request_id": self.id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "key": self.key,
            "model": self.model,
            "backend": self.backend,
            "ttft_ms": None
            if self.first_token is None
            else round((self.first_token - self.started) * 1000, 2),
            "duration_ms": round((ended - self.started) * 1000, 2),
            "queue_ms": round(self.queue_wait * 1000, 2) if self.queue_wait else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "outcome": self.outcome,
        }


current: ContextVar[RequestRecord | None] = ContextVar("cortex_request", default=None)


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is safe to echo and log, else a new one."""
    for name, value in headers:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if SAFE_ID.fullmatch(given):
                return given
            break
    return new_uuid4()  # a UUID, as some servers (llama-cpp-python's) insist


def log_access(record: RequestRecord, ended: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields = record.fields(ended)
    access_log.info(
        "%s %s %s %s",
        record.method,
        record.path,
        record.status,
        " ".join(
            f"{k}={v}"
            for k, v in fields.items()
            if v is not None and k not in ("method", "path", "status")
        ),
        extra={"fields": fields},
    )
