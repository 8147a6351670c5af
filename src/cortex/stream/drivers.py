"""The choice of driver for one upstream answer, made from what its body can do.

A body that pushes its chunks (``backends/h1.py``) is driven by ``push.Push``,
which can go on below ASGI once the response has started; any other by
``pull.pull``. An answer that is one whole JSON document (no translator) is read
whole, bounded. Either way the caller gets the same ``Driven``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import UpstreamProtocolError
from ..events import Usage
from .contract import Translator
from .core import RelayLimits
from .ends import Conduit, Pushing
from .pull import UpstreamBody, pull, read_whole
from .push import Push
from .slices import Sliced


@dataclass
class Driven:
    """An answer's parts for the ASGI side, and how to go on below it (``direct``)."""

    parts: AsyncGenerator[bytes, None]
    usage: Callable[[], Usage]  # the token counts, read once the answer ended
    direct: Callable[[Conduit], Awaitable[bytes]] | None = None  # the answer's last bytes
    close: Callable[[], None] = field(default=lambda: None)
    ended: Callable[[], bool] = field(default=lambda: False)  # no part will follow


def drive(upstream: UpstreamBody, translator: Translator | None, limits: RelayLimits) -> Driven:
    if translator is None:
        whole = _Whole()
        return Driven(whole.parts(upstream, limits), whole.usage)
    usage = _counted(translator)
    if hasattr(upstream, "push"):  # a Protocol's isinstance costs 10 µs a request (measured)
        pushing: Pushing = upstream  # type: ignore[assignment]  # it has push(): the check above
        pushed = Push(Sliced(pushing), translator, limits)
        return Driven(pushed.parts(), usage, pushed.direct, pushed.close, pushed.ended)
    return Driven(pull(upstream, translator, limits), usage)


def _counted(translator: Translator) -> Callable[[], Usage]:
    """Token counts as reported, else the pieces relayed."""

    def usage() -> Usage:
        reported = translator.usage
        if reported.completion_tokens is None:
            return Usage(reported.prompt_tokens, translator.pieces)
        return reported

    return usage


class _Whole:
    """A non-streaming answer passed on as is, kept to read its token counts."""

    def __init__(self) -> None:
        self._body = b""

    async def parts(
        self, upstream: UpstreamBody, limits: RelayLimits
    ) -> AsyncGenerator[bytes, None]:
        self._body = await read_whole(upstream, limits)
        if not isinstance(_parsed(self._body), dict):
            raise UpstreamProtocolError("the model server's answer is not a JSON object")
        yield self._body

    def usage(self) -> Usage:
        answer = _parsed(self._body)
        if not isinstance(answer, dict):
            return Usage()
        reported = answer.get("usage")
        if isinstance(reported, dict):
            return Usage(reported.get("prompt_tokens"), reported.get("completion_tokens"))
        return Usage(answer.get("prompt_eval_count"), answer.get("eval_count"))


def _parsed(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
