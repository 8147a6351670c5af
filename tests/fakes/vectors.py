"""Deterministic fake embeddings, identical in Ollama's and OpenAI's dialects.

Each component is an odd multiple of 1/512 in (-0.5, 0.5): exact in float32 (so the base64
form round-trips), never 0 or an integer (so Python and Go print it the same way). Vectors
are not normalised; asking for fewer dimensions returns a prefix of the full vector.
"""

from __future__ import annotations

import base64
import hashlib
import struct

DIMENSIONS = 8
MAX_DIMENSIONS = 4096  # a model's embedding length: more is refused (and would stall the fake)


def embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    seed = text.encode()
    raw = b""
    block = 0
    while len(raw) < dimensions:
        raw += hashlib.sha256(block.to_bytes(4, "big") + seed).digest()
        block += 1
    return [(2 * byte - 255) / 512 for byte in raw[:dimensions]]


def to_base64(vector: list[float]) -> str:
    """OpenAI's encoding_format="base64": little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def token_count(text: str) -> int:
    """The fake tokenizer: one token per whitespace-separated word, at least one."""
    return max(1, len(text.split()))
