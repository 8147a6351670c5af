"""Who may call Córtex, and how much: API keys and per-key limits on every request.

Keys are off while none exist: local use needs none. Once a key exists (or
always, with ``require_keys``, which defaults to true when ``redis_url`` is
set), requests need one, sent as ``Authorization: Bearer <key>``
(the OpenAI SDKs' way) or ``X-API-Key: <key>``. Which paths:

- open: ``/health``, ``/ready``, the chat page (``/``, ``/static/*``), ``/docs``
  and ``/openapi.json``;
- ``/cortex/*`` and ``/metrics``: any valid key when ``ops_require_key`` (the
  default), else open; no limits apply to them;
- the rest (``/api/*``, ``/v1/*``): a valid key, then that key's limits
  (``limits.py``); POSTs also take a concurrency slot and count toward the
  day's tokens.

A wrong or missing key is a 401 and a limit a 429 with ``Retry-After``, in the
dialect of the path (OpenAI's error object on ``/v1/*``, Ollama's elsewhere).
The key itself is never logged or echoed: only its name reaches the access log.

The pipeline (``app.py``) admits every request here before any handler runs,
and keeps the ``Ticket`` in the request's context (``cortex.context``): the relay
checks the model against it once it knows the model (403 for one the key may not
use), and when the response ends ``finish`` frees its slot and records usage,
with the token counts and outcome from the request's record.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from starlette.types import Scope

from ..config import Settings
from ..errors import LimitsUnavailable, Unauthorized
from ..observe import RequestRecord
from ..urls import redact_url
from .keys import FileKeyStore, KeyRing, KeyStore, default_keys_file
from .limiter import CLOSED_RETRY_AFTER, Limiter, Outage
from .limits import LimitStore, MemoryLimitStore
from .ticket import Ticket

logger = logging.getLogger("cortex.access")

OPEN_PATHS = frozenset({"/health", "/ready", "/", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/static/",)
FAILED_OUTCOMES = frozenset({"upstream-error", "timeout", "error"})
MISSING_KEY = "missing API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
INVALID_KEY = "invalid API key"


class Access:
    """The keys a gateway accepts and the limits it enforces, with their stores."""

    def __init__(self, settings: Settings, known: Callable[[str], bool] = lambda _: True) -> None:
        self.settings = settings
        # Usage files a model no backend lists and none answered under "other"
        self._known = known
        self._answered: set[str] = set()
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        policy = settings.limits_on_redis_failure
        self._where = redact_url(redis_url) if redis_url else "memory"
        outage = Outage(self._where, policy)
        key_store: KeyStore
        limit_store: LimitStore
        if redis_url:
            from .limits_redis import RedisKeyStore, RedisLimitStore, connect

            client = connect(redis_url)
            key_store, limit_store = RedisKeyStore(client), RedisLimitStore(client)
        else:
            key_store = FileKeyStore(settings.keys_file or default_keys_file())
            limit_store = MemoryLimitStore()
        self.keys = KeyRing(
            list(settings.keys), key_store, settings.keys_refresh, outage.failed, outage.ok
        )
        self.limiter = Limiter(limit_store, policy, outage)

    @property
    def on(self) -> bool:
        """Keys are required: some exist, or the settings say so (``require_keys``)."""
        return self.settings.keys_always_required or self.keys.any or not self.keys.loaded

    @property
    def problem(self) -> str | None:
        """Why no keyed request can be served (``/ready``): the key store has never
        answered and no key is configured in the settings."""
        if self.keys.loaded or self.keys.any:
            return None
        return "API keys cannot be checked: the key store has not answered yet"

    async def start(self) -> None:
        await self.keys.load(strict=True)
        self.keys.start()
        self.limiter.start()
        if self.on:
            logger.info("API keys are required; limits are kept in %s", self._where)
        if self.on and self.settings.workers > 1 and self.settings.redis_url is None:
            logger.warning(
                "%d workers keep per-key limits each on their own, so a key gets up to %d "
                "times its limits; set redis_url to share them",
                self.settings.workers,
                self.settings.workers,
            )

    async def close(self) -> None:
        await self.keys.close()
        await self.limiter.close()

    async def admit(self, scope: Scope, record: RequestRecord) -> Ticket | None:
        """The request's ticket, or None when it needs no key. Raises the refusal."""
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        ops = path == "/metrics" or path.startswith("/cortex/")
        if ops and not self.settings.ops_require_key:
            return None
        presented = _presented(scope["headers"])
        key = self.keys.identify(presented) if presented is not None else None
        if key is None:
            if not self.keys.loaded:
                raise LimitsUnavailable("API keys cannot be checked right now", CLOSED_RETRY_AFTER)
            raise Unauthorized(MISSING_KEY if presented is None else INVALID_KEY)
        record.key = key.name
        if ops:
            return Ticket(key, limited=False)
        # its own id for the limits: a client's X-Request-ID may repeat, and would count once
        request = uuid.uuid4().hex if key.rpm else ""
        lease = await self.limiter.admit(key, request, answer=scope["method"] == "POST")
        return Ticket(key, lease, request=request)

    async def finish(self, ticket: Ticket, record: RequestRecord) -> None:
        """Free the ticket's slot and record its usage (none for a refused request)."""
        if not ticket.limited:
            return
        if ticket.refused:
            await self.limiter.refund(ticket.key.name, ticket.request, ticket.lease)
            return
        model = ticket.model or record.model
        prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
        status = record.status or 500
        failed = status >= 400 or record.outcome in FAILED_OUTCOMES
        if model is None:
            model = "-"
        elif status == 200:
            self._answered.add(model)
        elif model not in self._answered and not self._known(model):
            model = "other"  # a client must not grow the usage table with made-up names
        await self.limiter.finish(ticket.key.name, ticket.lease, model, prompt, completion, failed)

    async def usage(self, ticket: Ticket | None) -> dict[str, Any]:
        """Usage of every key; with keys on, a key that is not ``admin`` sees only its own."""
        rows, today = await self.limiter.usage()
        if ticket is not None and not ticket.key.admin:
            name = ticket.key.name
            rows = [r for r in rows if r.key == name]
            today = {k: v for k, v in today.items() if k == name}
        rows.sort(key=lambda r: (r.key, r.model))
        return {"usage": [asdict(r) for r in rows], "tokens_today": today}


def _presented(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None
