"""What llama.cpp's llama-server tells of the model it serves, at ``GET /props``.

``default_generation_settings.n_ctx`` is the context each request gets;
``modalities.vision`` says whether images go in; ``chat_template_caps`` says what
its chat template can carry (tools, reasoning). None of it is guessed: a server
that does not say gets no capability beyond ``completion``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from ..catalog import ModelEntry

PROPS_PATH = "/props"


def read_props(body: bytes) -> ModelEntry | None:
    """The facts of a ``/props`` answer, as a nameless entry; None if it is not one."""
    try:
        props = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    if not isinstance(settings, dict):
        return None
    n_ctx = settings.get("n_ctx")
    capabilities = ["completion"]
    caps = _flags(props.get("chat_template_caps"))
    if caps.get("supports_tools") or caps.get("supports_tool_calls"):
        capabilities.append("tools")
    if _flags(props.get("modalities")).get("vision"):
        capabilities.append("vision")
    if caps.get("supports_reasoning") or caps.get("supports_reasoning_effort"):
        capabilities.append("thinking")
    context = n_ctx if type(n_ctx) is int and n_ctx > 0 else None
    return ModelEntry("", 0, "", context_length=context, capabilities=tuple(capabilities))


def with_props(entries: list[ModelEntry], props: ModelEntry | None) -> list[ModelEntry]:
    """A server's model list with what its ``/props`` said, when it serves one model (a
    llama-server routing between several answers for one at a time)."""
    if props is None or len(entries) != 1:
        return entries
    entry = entries[0]
    context = props.context_length or entry.context_length
    return [replace(entry, context_length=context, capabilities=props.capabilities)]


def _flags(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
