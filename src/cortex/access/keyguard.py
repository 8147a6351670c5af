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

An admitted request runs with a ``Ticket`` in a context variable (``ticket.py``):
the relay calls ``allow_model`` once it knows the model (403 for one the key may
not use), and when the response ends the ticket frees its slot and records usage,
with the token counts and outcome from the request's ``observe`` record.
Requests reach handlers two ways (see ``app.StreamingRoutes``): ``guarded``
wraps the streaming handlers, ``KeyGuard`` is FastAPI's middleware for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any, TypeVar, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import observe
from ..config import Settings
from ..errors import CortexError, LimitsUnavailable, Unauthorized, error_response
from ..urls import redact_url
from .keys import FileKeyStore, KeyRing, KeyStore, default_keys_file
from .limits import CLOSED_RETRY_AFTER, Limiter, LimitStore, MemoryLimitStore, Outage
from .ticket import TICKET, Ticket

logger = logging.getLogger("cortex.access")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
H = TypeVar("H", bound=Handler)
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

    async def admit(self, scope: Scope) -> Ticket | None:
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
        record = observe.current.get()
        if record is not None:
            record.key = key.name
        if ops:
            return Ticket(key, limited=False)
        lease = await self.limiter.admit(key, answer=scope["method"] == "POST")
        return Ticket(key, lease)

    async def finish(self, ticket: Ticket, status: int) -> None:
        """Free the ticket's slot and record its usage."""
        if not ticket.limited:
            return
        model, prompt, completion = ticket.model, 0, 0
        failed = status >= 400
        record = observe.current.get()
        if record is not None:
            model = model or record.model
            prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
            failed = failed or record.outcome in FAILED_OUTCOMES
        if model is None:
            model = "-"
        elif status == 200:
            self._answered.add(model)
        elif model not in self._answered and not self._known(model):
            model = "other"  # a client must not grow the usage table with made-up names
        await self.limiter.finish(ticket.key.name, ticket.lease, model, prompt, completion, failed)

    async def usage(self) -> dict[str, Any]:
        """Usage of every key; with keys on, a key that is not ``admin`` sees only its own."""
        rows, today = await self.limiter.usage()
        ticket = TICKET.get()
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


def _access(scope: Scope) -> Access | None:
    gateway = getattr(getattr(scope.get("app"), "state", None), "gateway", None)
    access: Access | None = getattr(gateway, "access", None)
    return access


def rejection(path: str, exc: CortexError) -> Response:
    """A refused request's response, in the dialect of its path."""
    response = error_response(exc, path)
    record = observe.current.get()
    if record is not None:
        record.outcome = "rejected"
    return response


async def _run(
    app: ASGIApp, access: Access, ticket: Ticket, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run an admitted request's app or response, then settle its ticket."""
    status = 500

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    TICKET.set(ticket)
    try:
        await app(scope, receive, watch)
    finally:
        await access.finish(ticket, status)


class Ticketed(Response):
    """A streaming handler's response, settling the request's ticket when it ends."""

    def __init__(self, inner: Response, access: Access, ticket: Ticket) -> None:
        self._inner = inner
        self._access = access
        self._ticket = ticket
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _run(self._inner, self._access, self._ticket, scope, receive, send)


def guarded(handler: H) -> H:
    """A streaming handler behind the key check and the key's limits."""

    async def guarded_handler(request: Request) -> Response:
        access = _access(request.scope)
        if access is None or not access.on:
            return await handler(request)
        try:
            ticket = await access.admit(request.scope)
        except CortexError as exc:
            return rejection(request.url.path, exc)
        if ticket is None:
            return await handler(request)
        TICKET.set(ticket)
        try:
            response = await handler(request)
        except BaseException as exc:
            await access.finish(ticket, exc.status if isinstance(exc, CortexError) else 500)
            raise
        return Ticketed(response, access, ticket)

    return cast(H, guarded_handler)


class KeyGuard:
    """FastAPI middleware: the same check for every request not sent to a streaming handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        access = _access(scope) if scope["type"] == "http" else None
        if access is None or not access.on:
            await self.app(scope, receive, send)
            return
        try:
            ticket = await access.admit(scope)
        except CortexError as exc:
            await rejection(scope["path"], exc)(scope, receive, send)
            return
        if ticket is None:
            await self.app(scope, receive, send)
            return
        await _run(self.app, access, ticket, scope, receive, send)
