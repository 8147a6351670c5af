"""One client request relayed through the router: planned onto whichever backend serves it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from starlette.responses import Response

from ..asks import Call, Embedding, Generation
from ..backends.base import Exchange, upstream_json
from ..context import RequestContext
from ..dialects.codecs import CODECS
from ..errors import CortexError, Dialect, UpstreamStatus
from ..events import Usage
from ..gateway import Gateway
from ..routing import Failover, Lease
from ..stream.drivers import drive
from ..stream.response import Attempt, Headers, RelayResponse
from ..telemetry import UNWATCHED
from .replies import JSON_MEDIA_TYPE, raw_json_reply

NO_THINKING = "does not support thinking"  # Ollama's refusal of a think for such a model


@dataclass
class RoutedSource:
    """A ``stream.response.Source``: each attempt leases a backend from the router."""

    gw: Gateway
    ask: Generation
    ctx: RequestContext

    failover: Failover = field(init=False)
    # Córtex's own time before the upstream's, over the attempts so far (x-cortex-overhead-ms),
    # and when the next attempt began (after a failed one; the first begins with the request).
    overhead: float = field(init=False, default=0.0)
    began: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.failover = Failover(self.gw.router, self.ask.model, self.gw.settings.max_attempts)

    def retry(self, exc: CortexError) -> bool:
        return self.failover.retry_after(exc)

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[Attempt]:
        record = self.ctx.record
        record.model, record.relayed = self.ask.model, True
        # the first attempt begins with the request, less the client's time sending its body
        began = record.started + record.body_wait if self.began is None else self.began
        async with self.failover.lease(self.ask.prompt, self.ctx.party) as lease:
            record.backend, record.queue_wait = lease.member.name, lease.waited
            sent_at = time.monotonic()
            ask = lease.member.prepared(self.ask)
            call = lease.backend.wire.generation(ask)
            limits = self.gw.limits
            if lease.cold:  # a model being loaded gets its load's time on top
                first_byte = limits.first_byte + self.gw.settings.load_timeout
                limits = replace(limits, first_byte=first_byte)
            trace = self.ctx.trace
            watch = (
                UNWATCHED if trace is None else trace.attempt(self.ask, lease.backend, ask.model)
            )
            self.overhead += time.monotonic() - began - lease.waited
            headers = _headers(lease, self.overhead)
            with watch:
                try:
                    opened = _opened(lease, call, limits.first_byte, record.id, watch.traceparent)
                    async with opened as upstream:
                        driven = drive(upstream, call.translator, limits)
                        watch.reading(driven.usage, call.translator)
                        try:
                            yield Attempt(
                                parts=driven.parts,
                                error_frame=call.translator.error if call.translator else None,
                                headers=headers,
                                on_first_part=lambda: lease.first_byte(time.monotonic() - sent_at),
                                usage=driven.usage,
                                direct=driven.direct,
                                ended=driven.ended,
                            )
                        except asyncio.CancelledError:
                            # The client left (the OpenAI SDK hangs up right after [DONE]): the
                            # tokens it got still count, for per-key limits and usage.
                            usage = driven.usage()
                            record.prompt_tokens = usage.prompt_tokens
                            record.completion_tokens = usage.completion_tokens
                            raise
                        finally:
                            driven.close()
                except CortexError:
                    self.began = time.monotonic()  # the upstream's time ends; a retry's begins
                    raise


def _opened(
    lease: Lease, call: Call, first_byte: float, request_id: str, trace: bytes
) -> AbstractAsyncContextManager[Any]:
    """The upstream answer to ``call``; when the client asked for thinking only where the
    model can, again without it if the server refuses it for a model that has none."""

    def sent(body: bytes) -> AbstractAsyncContextManager[Any]:
        return lease.backend.open(
            "POST", call.path, body, first_byte, request_id=request_id, trace=trace
        )

    if call.unthinking is None:
        return sent(call.body)
    return _unless_refused(sent, call.body, call.unthinking)


@asynccontextmanager
async def _unless_refused(
    sent: Callable[[bytes], AbstractAsyncContextManager[Any]], body: bytes, unthinking: bytes
) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:
        try:
            upstream = await stack.enter_async_context(sent(body))
        except UpstreamStatus as exc:
            if exc.status != 400 or NO_THINKING not in exc.message:
                raise
            upstream = await stack.enter_async_context(sent(unthinking))
        yield upstream


def _headers(lease: Lease, overhead: float) -> Headers:
    headers = [
        (b"x-cortex-backend", lease.member.name.encode()),
        (b"x-cortex-overhead-ms", b"%.2f" % (max(overhead, 0.0) * 1000)),
    ]
    if lease.waited:
        headers.append((b"x-cortex-queue-ms", f"{lease.waited * 1000:.0f}".encode()))
    if lease.queue_position:
        headers.append((b"x-cortex-queue-position", str(lease.queue_position).encode()))
    return tuple(headers)


def relay_response(gw: Gateway, ask: Generation, ctx: RequestContext) -> RelayResponse:
    """The response that relays ``ask``, streamed as its dialect streams or whole as JSON."""
    ctx.allow_model(ask.model)
    head = CODECS[ask.dialect].stream_head(ask)
    return RelayResponse(
        RoutedSource(gw, ask, ctx),
        ctx.record,
        media_type=head.media_type if ask.stream else JSON_MEDIA_TYPE,
        headers=head.headers if ask.stream else (),
        dialect=ask.dialect,
        streaming=ask.stream,
        stopping=gw.stopping,
        heartbeat=head.heartbeat,
        heartbeat_every=gw.settings.heartbeat_interval,
        framing=head.framing,
        error_frame=head.error,
    )


async def embedding(gw: Gateway, ask: Embedding, ctx: RequestContext) -> bytes:
    """An embeddings answer from a backend for the model, in the client's shape."""

    async def call(lease: Lease) -> bytes:
        named = lease.member.prepared(ask)
        trace = ctx.trace
        watch = UNWATCHED if trace is None else trace.attempt(ask, lease.backend, named.model)
        with watch:  # a CLIENT span, gen_ai.operation.name "embeddings"
            exchange = lease.backend.wire.embedding(named)
            answer = await answered(gw, lease, exchange, ctx, watch.traceparent)
            watch.reading(lambda: Usage(embedding_tokens(answer)), None)
            return answer

    return await gw.with_backend(ask.model, call, ctx)


async def answered(
    gw: Gateway, lease: Lease, exchange: Exchange, ctx: RequestContext, trace: bytes = b""
) -> bytes:
    """Make an exchange with the leased backend; its answer in the client's shape."""
    answer = await gw.post(lease.member, exchange.path, exchange.body, ctx.record.id, trace)
    return exchange.answer(answer)


async def lone_backends_answer(
    gw: Gateway, dialect: Dialect, path: str, ctx: RequestContext
) -> Response | None:
    """With a single backend speaking the client's ``dialect``, its own answer to a metadata
    GET, as is."""
    single = gw.single
    if single is None or not single.backend.wire.speaks(dialect):
        return None
    return raw_json_reply(visible_models(await gw.fetch(single, path), ctx))


# Where each model list keeps its entries, and the field that names each one.
MODEL_LISTS = (("models", "name"), ("data", "id"))


def visible_models(answer: bytes, ctx: RequestContext) -> bytes:
    """A model list (Ollama's or OpenAI's) with only the models the request's key may use."""
    allowed = ctx.visible()
    if allowed is None:
        return answer
    document = upstream_json(answer)
    if not isinstance(document, dict):
        return answer
    for key, name in MODEL_LISTS:
        entries = document.get(key)
        if isinstance(entries, list):
            document[key] = [
                e for e in entries if isinstance(e, dict) and allowed(str(e.get(name, "")))
            ]
    return orjson.dumps(document)


def embedding_reply(answer: bytes, ctx: RequestContext) -> Response:
    """An embeddings answer as it is; its prompt tokens count for usage and limits."""
    ctx.record.prompt_tokens = embedding_tokens(answer)
    return raw_json_reply(answer)


def embedding_tokens(answer: bytes) -> int | None:
    """The input tokens an embeddings answer reports (OpenAI's ``usage`` or Ollama's count)."""
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    usage = parsed.get("usage")
    reported = usage if isinstance(usage, dict) else {}
    count = reported.get("prompt_tokens", parsed.get("prompt_eval_count"))
    return count if isinstance(count, int) and count >= 0 else None
