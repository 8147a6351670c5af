"""The state one running gateway owns: settings, the router and its backends."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from starlette.requests import Request

from .access.keyguard import Access
from .aliases import Aliases
from .backends.base import Timeouts
from .backends.http import HTTPBackend
from .backends.local import LocalBackend
from .catalog import DefaultModel, ModelEntry
from .config import BackendSettings, Settings
from .context import RequestContext
from .dialects.responses.kept import KeptResponses
from .dialects.responses.store import MemoryStore, ResponseStore
from .dialects.responses.store_redis import RedisStore
from .errors import CortexError
from .observe.metrics import Metrics
from .routing import Backend, Circuit, Failover, Lease, Member, Router
from .stream.core import RelayLimits
from .stream.pull import read_whole

T = TypeVar("T")


@dataclass
class Gateway:
    settings: Settings
    router: Router = field(init=False)
    limits: RelayLimits = field(init=False)
    default_model: DefaultModel = field(init=False)
    access: Access = field(init=False)  # API keys and per-key limits

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = RelayLimits(
            first_byte=s.first_byte_timeout,
            idle=s.idle_timeout,
            heartbeat=s.heartbeat_interval,
            max_line_bytes=s.max_line_bytes,
            max_response_bytes=s.max_response_bytes,
        )
        members = [
            Member(config, self._backend(config), Circuit(s.circuit_failures, s.circuit_cooldown))
            for config in s.backend_list()
        ]
        self.router = Router(s, members, self.limits)
        self.draining = False
        self._loop = asyncio.get_running_loop()
        # Done when the drain time is up; one future every answer in flight waits on.
        self.stopping: asyncio.Future[None] = self._loop.create_future()
        self.metrics: Metrics | None = (
            Metrics(self.router.knows, lambda: self.router.queued) if s.metrics else None
        )
        self.default_model = DefaultModel(s.default_model, self.models, s.models_cache_seconds)
        self.access = Access(s, self.router.knows)
        self.responses = KeptResponses(response_store(s))
        self.aliases = Aliases(s.aliases)

    def _backend(self, config: BackendSettings) -> Backend:
        s = self.settings
        if config.kind == "local":
            return LocalBackend(
                s.local_model_path,
                s.local_model_name,
                chat_template=s.local_chat_template,
                threads=s.local_threads,
                context=s.local_context,
            )
        timeouts = Timeouts(s.connect_timeout, s.first_byte_timeout, s.idle_timeout)
        key = config.api_key.get_secret_value() if config.api_key else None
        return HTTPBackend(
            config.kind, config.url, timeouts, key, receive_buffer=s.upstream_socket_buffer
        )

    def begin_drain(self) -> None:
        """Stop taking requests; end the answers still running after ``drain_timeout``.

        Safe to call from a signal handler.
        """
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if not self.draining:
            self.draining = True
            self._loop.call_later(self.settings.drain_timeout, self._stop_answers)

    def _stop_answers(self) -> None:
        if not self.stopping.done():
            self.stopping.set_result(None)

    @property
    def single(self) -> Member | None:
        """The only backend, when there is just one."""
        members = self.router.members
        return members[0] if len(members) == 1 else None

    async def fetch(self, member: Member, path: str) -> bytes:
        """GET a small document from one backend, whole."""
        async with member.backend.open("GET", path) as body:
            return await read_whole(body, self.limits)

    async def post(
        self, member: Member, path: str, payload: bytes, request_id: str, trace: bytes = b""
    ) -> bytes:
        """POST a body to one backend and return its whole answer (``trace``: W3C trace
        context header lines, as ``telemetry`` writes them)."""
        opened = member.backend.open("POST", path, payload, request_id=request_id, trace=trace)
        async with opened as body:
            return await read_whole(body, self.limits)

    async def models(self) -> list[ModelEntry]:
        """Every backend's models, merged, with the aliases of those they serve."""
        return self.aliases.listed(await self.router.catalogue())

    async def with_backend(
        self,
        model: str,
        call: Callable[[Lease], Awaitable[T]],
        ctx: RequestContext,
    ) -> T:
        """Run a non-streaming exchange on a backend for ``model``, failing over on faults."""
        ctx.allow_model(model)
        record = ctx.record
        record.model = model
        failover = Failover(self.router, model, self.settings.max_attempts)
        while True:
            try:
                async with failover.lease(party=ctx.party) as lease:
                    record.backend = lease.member.name
                    result = await call(lease)
                    lease.succeeded()
                    return result
            except CortexError as exc:
                if not failover.retry_after(exc):
                    raise

    @classmethod
    async def start(cls, settings: Settings) -> Gateway:
        gateway = cls(settings)
        await gateway.access.start()
        try:
            for member in gateway.router.members:
                await member.backend.start()  # the embedded model's self-test, before serving
        except BaseException:
            await gateway.close()
            raise
        gateway.router.start()
        gateway._drain_on_signals()
        return gateway

    def _drain_on_signals(self) -> None:
        """Start draining on SIGTERM/SIGINT, then let the server's own handler run.

        The server stops accepting at once and waits for open requests; the
        drain ends what is still running after ``drain_timeout`` with an explicit
        error, before the server would cancel it silently.
        """
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in another program (tests): it owns the signals
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous):
                signal.signal(sig, partial(_drain_then, self, previous))

    async def close(self) -> None:
        await self.responses.close()
        await self.access.close()
        await self.router.close()
        for member in self.router.members:
            await member.backend.close()


def response_store(settings: Settings) -> ResponseStore:
    """Where stored responses live: Redis when ``redis_url`` is set, so every instance sees
    every response, else this process's memory."""
    if settings.redis_url is not None:
        from .access.limits_redis import connect

        client = connect(settings.redis_url.get_secret_value())
        return RedisStore(client, settings.responses_ttl, settings.responses_max_item_bytes)
    return MemoryStore(
        settings.responses_max_items,
        settings.responses_max_bytes,
        settings.responses_ttl,
        max_item_bytes=settings.responses_max_item_bytes,
    )


def _drain_then(gw: Gateway, previous: Callable[[int, Any], Any], signum: int, frame: Any) -> None:
    gw.begin_drain()
    previous(signum, frame)


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.scope["app"].state.gateway
    return gw
