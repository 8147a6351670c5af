"""Counting a prompt's tokens, for ``/v1/messages/count_tokens``: Ollama has no such call.

Where the model's server has a tokenizer endpoint (llama.cpp's and vLLM's ``POST
/tokenize``, at the server's root) its count is used; otherwise, or when that call
fails, an estimate of four UTF-8 bytes a token. Either way the prompt is laid out
plainly, without the model's chat template, so the count is close, not exact.
"""

from __future__ import annotations

from typing import Literal

import orjson

from ..chat import ChatRequest
from ..context import RequestContext
from ..dialects.anthropic.tokens import estimate_tokens, prompt_text, token_count
from ..errors import CortexError
from ..gateway import Gateway
from ..routing import Lease
from ..stream.pull import read_whole

Counted = Literal["tokenizer", "estimate"]


async def count_tokens(
    gw: Gateway, request: ChatRequest, ctx: RequestContext
) -> tuple[int, Counted]:
    async def call(lease: Lease) -> tuple[int, Counted]:
        if not lease.backend.wire.tokenizes:
            return estimate_tokens(request), "estimate"
        model = lease.member.upstream_name(request.model)
        text = prompt_text(request)
        body = orjson.dumps({"model": model, "prompt": text, "content": text})
        try:
            async with lease.backend.open("POST", "/tokenize", body, from_root=True) as answer:
                counted = token_count(orjson.loads(await read_whole(answer, gw.limits)))
        except (CortexError, orjson.JSONDecodeError):
            counted = None
        if counted is None:
            return estimate_tokens(request), "estimate"
        return counted, "tokenizer"

    return await gw.with_backend(request.model, call, ctx)
