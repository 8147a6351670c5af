"""Every dialect's codec, and the one rule that pairs a client's with an upstream's.

Same dialect on both sides: the codec's passthrough forwards the upstream's
bytes. Otherwise: the client's codec reads the request into a ``ChatRequest``,
the upstream's writes it in its own dialect, and the answer comes back through
the upstream's reader and the client's writer (``stream.translate.CrossDialect``).
A new dialect is one ``Codec`` registered here; nothing above ``backends/`` changes.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from ..asks import Call, Generation
from ..errors import BadRequest, Dialect
from ..stream.translate import CrossDialect
from .anthropic.codec import AnthropicCodec
from .codec import Codec
from .ollama.codec import OllamaCodec
from .openai.codec import OpenAICodec
from .responses.codec import ResponsesCodec

CODECS: dict[Dialect, Codec] = {
    "ollama": OllamaCodec(),
    "openai": OpenAICodec(),
    "anthropic": AnthropicCodec(),
    "responses": ResponsesCodec(),
}


def plan(ask: Generation, upstream: Dialect, *, streams_only: bool = False) -> Call:
    """How a server speaking ``upstream`` serves ``ask``: the call, and how its answer comes.
    ``streams_only``: the server always streams (the embedded model), so a whole answer in
    its own dialect is asked for as a stream and gathered, as for a client of another."""
    client, server = CODECS[ask.dialect], CODECS[upstream]
    if client is server and (ask.stream or not streams_only):
        return client.passthrough(ask)
    asked = [k for k in client.untranslated(ask) if ask.payload.get(k) not in (None, False, "")]
    if asked:
        raise BadRequest(
            f"{', '.join(asked)}: not translated for this model's server, which speaks "
            f"{server.server}; leave {'them' if len(asked) > 1 else 'it'} out"
        )
    request = client.read_request(ask)
    path, body = server.upstream_call(request)
    translate = CrossDialect(server.reader(), client.writer(ask, request), aggregate=not ask.stream)
    unthinking = None
    if request.think_optional and request.think not in (None, False):
        unthinking = orjson.dumps(server.upstream_call(replace(request, think=None))[1])
    return Call(path, orjson.dumps(body), translate, unthinking)
