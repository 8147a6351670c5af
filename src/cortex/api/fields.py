"""One body, one reading: keys that Córtex and a model server could read differently are refused.

Ollama's Go decoder matches JSON keys to fields case-insensitively (with
Unicode folding, so ``ſtream`` is ``stream``), and the last of two equal keys
wins. Córtex reads keys exactly. ``{"model": "llama3.2", "MODEL": "llava"}``
would pass a key's model limit here and be served as ``llava`` there. So a key
that differs from a known field only in case, or a known field given twice, is
a 400 that names it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import BadRequest

REQUEST_FIELDS = frozenset(
    {
        # Ollama
        "model", "messages", "stream", "format", "options", "tools", "keep_alive", "think",
        "prompt", "suffix", "system", "template", "context", "raw", "images", "input",
        "truncate", "dimensions", "logprobs", "top_logprobs", "shift",
        # OpenAI
        "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "top_k", "min_p", "seed", "stop", "presence_penalty", "frequency_penalty",
        "repeat_penalty", "response_format", "n", "logit_bias", "user", "tool_choice",
        "parallel_tool_calls", "reasoning_effort", "encoding_format", "modalities", "audio",
        "metadata", "store", "service_tier", "prediction", "verbosity",
    }
)  # fmt: skip
NESTED_FIELDS = frozenset(
    {
        # messages, tool calls and their functions
        "role", "content", "images", "tool_calls", "tool_call_id", "thinking", "tool_name",
        "refusal", "reasoning_content", "id", "type", "function", "index", "name", "arguments",
    }
)  # fmt: skip
KNOWN_FIELDS = REQUEST_FIELDS | NESTED_FIELDS
_BY_FOLD = {name.casefold(): name for name in KNOWN_FIELDS}
# The body's own fields as keys, to spot a repeated one without a second, slower parse
# (a message's fields repeat from one message to the next, so they are left to the exact check).
_KEY = re.compile(
    rb'"(' + b"|".join(n.encode() for n in sorted(REQUEST_FIELDS - NESTED_FIELDS)) + rb')"\s*:'
)


def check_keys(raw: bytes, body: dict[str, Any]) -> None:
    """Raise BadRequest for a case variant or a repetition of a known field."""
    for obj in _read_objects(body):
        for key in obj:
            if key not in KNOWN_FIELDS:
                known = _BY_FOLD.get(key.casefold())
                if known is not None:
                    raise BadRequest(
                        f'invalid request: the key "{key}" differs from "{known}" only in case'
                    )
    if b"\\u" in raw or _repeats_a_name(raw):
        json.loads(raw, object_pairs_hook=_refuse_repeats)


def _read_objects(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects whose fields Córtex reads: the body, its messages and their tool calls."""
    objects = [body]
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        objects.append(message)
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                objects.append(call)
                if isinstance(call.get("function"), dict):
                    objects.append(call["function"])
    return objects


def _repeats_a_name(raw: bytes) -> bool:
    """One of the body's own field names appears twice as a key, somewhere (a cheap filter)."""
    seen: set[bytes] = set()
    for match in _KEY.finditer(raw):
        name = match.group(1)
        if name in seen:
            return True
        seen.add(name)
    return False


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen and key in KNOWN_FIELDS:
            raise BadRequest(f'invalid request: the key "{key}" appears twice in one object')
        seen.add(key)
    return dict(pairs)
