"""How deep a JSON value nests, bounded: a request's and a tool call's arguments."""

from __future__ import annotations

from typing import Any

# Deeper JSON than this is refused: orjson re-encodes at most 254 levels, and a
# translated body wraps the client's values in a few levels of its own.
MAX_JSON_DEPTH = 128


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests objects and arrays more than ``limit`` levels."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
