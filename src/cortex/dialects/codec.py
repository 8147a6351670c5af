"""What a dialect is to the relay: a codec.

A codec reads its dialect's requests into ``cortex.chat.ChatRequest`` and writes
them back (request translation both ways); its ``Reader`` turns an upstream's
lines into ``cortex.events`` and its ``Writer`` turns those events into a client's
bytes in the dialect's framing. When client and upstream speak the same dialect
the codec's ``passthrough`` checks each line and forwards the upstream's bytes as
they are. No I/O happens here: the relay core (``stream/core.py``) drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import CortexError, Dialect, StreamFraming
from ..stream.contract import Reader, Writer

if TYPE_CHECKING:
    from ..asks import Call, Generation
    from ..chat import ChatRequest


@dataclass(frozen=True, slots=True)
class StreamHead:
    """How a dialect's stream starts and what it sends before the first part."""

    media_type: str
    headers: tuple[tuple[bytes, bytes], ...]
    heartbeat: bytes | None  # while the answer has not begun (a queue, a model loading)
    framing: StreamFraming  # its in-band error, for a failure before any attempt began
    # that error where the framing alone cannot write it (a Responses stream opens with
    # the response's own id and ends with response.failed)
    error: Callable[[CortexError], bytes] | None = None


class Codec(Protocol):
    """One dialect: as the client's (it reads requests and writes answers) and, where
    servers speak it (``upstream``), as the upstream's (it writes requests and reads answers)."""

    name: Dialect
    server: str  # how an error names a server that speaks it: "Ollama's API"
    upstream: bool  # model servers speak it, so a backend may be of this dialect

    def stream_head(self, ask: Generation) -> StreamHead: ...

    def passthrough(self, ask: Generation) -> Call:
        """The call for a client of this same dialect: its body, relayed as it is."""
        ...

    def read_request(self, ask: Generation) -> ChatRequest: ...

    def untranslated(self, ask: Generation) -> tuple[str, ...]:
        """Fields of the client's request that do not survive a translation."""
        ...

    def writer(self, ask: Generation, request: ChatRequest) -> Writer: ...

    def upstream_call(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        """The path and body of ``request`` for a server of this dialect (always streamed)."""
        ...

    def reader(self) -> Reader: ...
