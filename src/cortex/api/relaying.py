"""One client request relayed through the router: planned onto whichever backend serves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial

import orjson
from starlette.responses import Response

from .. import observe
from ..access.ticket import allow_model, model_filter, party
from ..backends.base import Embedding, Exchange, Generation, upstream_json
from ..backends.h1 import Connection
from ..chat import Usage
from ..errors import CortexError, Dialect, UpstreamProtocolError
from ..gateway import Gateway
from ..routing import Failover, Lease
from ..stream.relay import RelayLimits, Translator, UpstreamBody, read_whole, relay
from ..stream.response import Attempt, Headers, RelayResponse
from ..stream.splice import Splice
from .replies import JSON_MEDIA_TYPE, raw_json_reply


@dataclass
class RoutedSource:
    """A ``stream.response.Source``: each attempt leases a backend from the router."""

    gw: Gateway
    ask: Generation

    failover: Failover = field(init=False)
    failed_on: str | None = field(init=False, default=None)  # the last attempt's backend

    def __post_init__(self) -> None:
        self.failover = Failover(self.gw.router, self.ask.model, self.gw.settings.max_attempts)

    def retry(self, exc: CortexError) -> bool:
        return self.failed_on is not None and self.failover.retry(exc, self.failed_on)

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[Attempt]:
        record = observe.current.get()
        model = self.ask.model
        if record is not None:
            record.model, record.relayed = model, True
        self.failed_on = None
        excluded = self.failover.excluded
        messages = self.ask.payload.get("messages")
        lease = await self.gw.router.acquire(model, messages, excluded, party())
        self.failover.started()
        if record is not None:
            record.backend, record.queue_wait = lease.member.name, lease.waited
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        settings = self.gw.settings
        try:
            ask = self.ask.named(lease.member.upstream_name(self.ask.model))
            call = lease.backend.wire.generation(ask)
            translator = call.translator
            limits = self.gw.limits
            if lease.cold:  # a model being loaded gets its load's time on top
                limits = replace(limits, first_byte=limits.first_byte + settings.load_timeout)
            async with lease.backend.open(
                "POST", call.path, call.body, limits.first_byte
            ) as upstream:
                whole = WholeAnswer()
                splice = None
                if translator is not None and self.ask.stream and isinstance(upstream, Connection):
                    splice = Splice(upstream, translator, limits)
                try:
                    yield Attempt(
                        parts=(
                            splice.parts()
                            if splice is not None
                            else _parts(upstream, translator, limits, whole)
                        ),
                        error_frame=translator.error if translator is not None else None,
                        headers=_headers(lease),
                        on_first_part=lambda: lease.first_byte(loop.time() - sent_at),
                        usage=partial(_usage, translator, whole),
                        direct=splice.direct if splice is not None else None,
                    )
                except asyncio.CancelledError:
                    # The client left (the OpenAI SDK hangs up right after [DONE]): the
                    # tokens it got still count, for per-key limits and usage.
                    if record is not None:
                        usage = _usage(translator, whole)
                        record.prompt_tokens = usage.prompt_tokens
                        record.completion_tokens = usage.completion_tokens
                    raise
                finally:
                    if splice is not None:
                        splice.close()
        except CortexError as exc:
            lease.failed(exc)
            self.failed_on = lease.member.name
            raise
        finally:
            lease.release()


@dataclass
class WholeAnswer:
    """A non-streaming answer passed on as is, kept to read its token counts."""

    body: bytes = b""


def _parts(
    upstream: UpstreamBody, translator: Translator | None, limits: RelayLimits, whole: WholeAnswer
) -> AsyncGenerator[bytes, None]:
    if translator is not None:
        return relay(upstream, translator, limits)
    return _whole(upstream, limits, whole)


async def _whole(
    upstream: UpstreamBody, limits: RelayLimits, whole: WholeAnswer
) -> AsyncGenerator[bytes, None]:
    whole.body = await read_whole(upstream, limits)
    if not isinstance(upstream_json(whole.body), dict):
        raise UpstreamProtocolError("the model server's answer is not a JSON object")
    yield whole.body


def _usage(translator: Translator | None, whole: WholeAnswer) -> Usage:
    """Token counts as reported (Ollama's or OpenAI's fields), else the pieces relayed."""
    if translator is not None:
        usage = translator.usage
        if usage.completion_tokens is None:
            return Usage(usage.prompt_tokens, translator.pieces)
        return usage
    try:
        answer = orjson.loads(whole.body)
    except orjson.JSONDecodeError:
        return Usage()
    if not isinstance(answer, dict):
        return Usage()
    reported = answer.get("usage")
    if isinstance(reported, dict):
        return Usage(reported.get("prompt_tokens"), reported.get("completion_tokens"))
    return Usage(answer.get("prompt_eval_count"), answer.get("eval_count"))


def _headers(lease: Lease) -> Headers:
    headers = [(b"x-cortex-backend", lease.member.name.encode())]
    if lease.waited:
        headers.append((b"x-cortex-queue-ms", f"{lease.waited * 1000:.0f}".encode()))
    if lease.queue_position:
        headers.append((b"x-cortex-queue-position", str(lease.queue_position).encode()))
    return tuple(headers)


def relay_response(
    gw: Gateway, ask: Generation, *, media_type: str, headers: Headers = ()
) -> Response:
    allow_model(ask.model)
    return RelayResponse(
        RoutedSource(gw, ask),
        media_type=media_type if ask.stream else JSON_MEDIA_TYPE,
        headers=headers if ask.stream else (),
        dialect=ask.dialect,
        streaming=ask.stream,
        stopping=gw.stopping,
        heartbeat=ask.framing.heartbeat,
        heartbeat_every=gw.settings.heartbeat_interval,
        framing=ask.framing.name,
    )


async def embedding(gw: Gateway, ask: Embedding) -> bytes:
    """An embeddings answer from a backend for the model, in the client's shape."""

    async def call(lease: Lease) -> bytes:
        named = ask.named(lease.member.upstream_name(ask.model))
        return await answered(gw, lease, lease.backend.wire.embedding(named))

    return await gw.with_backend(ask.model, call)


async def answered(gw: Gateway, lease: Lease, exchange: Exchange) -> bytes:
    """Make an exchange with the leased backend; its answer in the client's shape."""
    return exchange.answer(await gw.post(lease.member, exchange.path, exchange.body))


async def lone_backends_answer(gw: Gateway, dialect: Dialect, path: str) -> Response | None:
    """With a single backend speaking the client's ``dialect``, its own answer to a metadata
    GET, as is."""
    single = gw.single
    if single is None or not single.backend.wire.speaks(dialect):
        return None
    return raw_json_reply(visible_models(await gw.fetch(single, path)))


# Where each model list keeps its entries, and the field that names each one.
MODEL_LISTS = (("models", "name"), ("data", "id"))


def visible_models(answer: bytes) -> bytes:
    """A model list (Ollama's or OpenAI's) with only the models the request's key may use."""
    allowed = model_filter()
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


def embedding_reply(answer: bytes) -> Response:
    """An embeddings answer as it is; its prompt tokens count for usage and limits."""
    record = observe.current.get()
    if record is not None:
        record.prompt_tokens = embedding_tokens(answer)
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
