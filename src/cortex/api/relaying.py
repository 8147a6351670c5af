"""Building the response for one upstream exchange: relayed, translated or whole."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from starlette.responses import Response

from ..backends.base import UpstreamBody
from ..errors import UpstreamProtocolError
from ..gateway import Gateway
from ..stream.relay import Translator, read_whole, relay
from ..stream.response import ErrorRenderer, RelayResponse
from .replies import JSON_MEDIA_TYPE


def relay_response(
    gw: Gateway,
    path: str,
    body: bytes | dict[str, Any],
    translator: Translator | None,
    *,
    streaming: bool,
    media_type: str,
    error_body: ErrorRenderer,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Response:
    """POST to the upstream and relay the answer.

    Without a translator the upstream's whole body is passed on as is.
    """
    payload = body if isinstance(body, bytes) else orjson.dumps(body)

    def open_upstream() -> AbstractAsyncContextManager[UpstreamBody]:
        return gw.backend.open("POST", path, payload)

    def produce(upstream: UpstreamBody) -> AsyncGenerator[bytes, None]:
        if translator is None:
            return _once(upstream, gw)
        return relay(upstream, translator, gw.limits)

    return RelayResponse(
        open_upstream,
        produce,
        media_type=media_type if streaming else JSON_MEDIA_TYPE,
        headers=headers if streaming else (),
        error_body=error_body,
        error_frame=translator.error if translator is not None else None,
        streaming=streaming,
    )


async def _once(upstream: UpstreamBody, gw: Gateway) -> AsyncGenerator[bytes, None]:
    yield await read_whole(upstream, gw.limits)


async def exchange(gw: Gateway, path: str, body: dict[str, Any]) -> Any:
    """POST a small JSON document and return the upstream's parsed JSON answer."""
    async with gw.backend.open("POST", path, orjson.dumps(body)) as upstream:
        raw = await read_whole(upstream, gw.limits)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the model server's answer is not JSON") from None
