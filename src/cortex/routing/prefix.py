"""Approximate prompt-prefix matching: where a request's prompt is likely cached already.

A prompt (the model, then each message's role and text, in order) is cut into
blocks of ``BLOCK`` bytes, and each block is named by a hash chained over all
blocks before it, so equal names mean equal prefixes. Each backend keeps the
names of the blocks it was sent in a bounded LRU index: the number of a
request's leading blocks found there is how much of its prompt that backend
has likely cached (llama.cpp and Ollama reuse the longest cached prefix).

Several Córtex instances agree without sharing state by rendezvous hashing:
a conversation (its prompt up to the end of its first user message) goes to
the backend whose name hashes highest with it, the same on every instance.
Where one sent a prompt when its home was busy, the others learn through Redis
(shared.py): that answer rides on the prompt as ``sent``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BLOCK = 256  # bytes of prompt per block (~64 tokens)
MAX_BLOCKS = 1024  # a request's first 256 KiB count
INDEX_BLOCKS = 65_536  # names kept per backend: 16 MiB of prompt in about 8.5 MB (measured)


@dataclass(frozen=True, slots=True)
class Prompt:
    blocks: list[bytes]  # chained block names, in order
    conversation: bytes  # names the prompt up to the end of its first user message
    sent: tuple[str, int] | None = None  # (backend, leading blocks) some instance sent there


def prompt_of(model: str, messages: Sequence[Any] | None) -> Prompt | None:
    if not messages:
        return None
    text = bytearray(model.encode() + b"\0")
    opening = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        text += f"{role}\0".encode()
        if isinstance(content, str):
            text += content.encode("utf-8", "surrogatepass")
        elif content is not None:
            text += repr(content).encode()
        text += b"\0"
        if not opening and role == "user":
            opening = len(text)
    opening = opening or len(text)
    blocks = []
    running = hashlib.blake2b(digest_size=8)
    view = memoryview(text)[: BLOCK * MAX_BLOCKS]
    for start in range(0, len(view), BLOCK):
        running.update(view[start : start + BLOCK])
        blocks.append(running.digest())
    conversation = hashlib.blake2b(view[:opening], digest_size=8).digest()
    return Prompt(blocks, conversation)


class PrefixIndex:
    """The block names one backend was sent, least recently used forgotten first."""

    def __init__(self, capacity: int = INDEX_BLOCKS) -> None:
        self._capacity = capacity
        self._names: OrderedDict[bytes, None] = OrderedDict()

    def match(self, prompt: Prompt) -> int:
        """How many of the prompt's leading blocks this backend was sent."""
        count = 0
        for name in prompt.blocks:
            if name not in self._names:
                break
            count += 1
        return count

    def seen(self, prompt: Prompt) -> bool:
        """This backend was sent an earlier turn of the prompt's conversation."""
        return prompt.conversation in self._names

    def add(self, prompt: Prompt) -> None:
        names = self._names
        for name in [prompt.conversation, *prompt.blocks]:
            names[name] = None
            names.move_to_end(name)
        while len(names) > self._capacity:
            names.popitem(last=False)

    def __len__(self) -> int:
        return len(self._names)


def rendezvous(key: bytes, names: Sequence[str]) -> list[str]:
    """``names`` ordered by highest random weight for ``key``: the same order everywhere."""
    return sorted(
        names,
        key=lambda name: hashlib.blake2b(key + name.encode(), digest_size=8).digest(),
        reverse=True,
    )
