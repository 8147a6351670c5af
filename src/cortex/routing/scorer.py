"""The ``state`` rule: a backend chosen by what each model server is doing.

Among the backends that may serve a request and have room, in order:
1. Residency (Ollama servers, from ``/api/ps``): a backend with the model in
   memory, or already loading it for another request (so concurrent first
   requests for a cold model wait for one load instead of starting several),
   unless each of them carries more than ``cold_slack`` streams per unit of weight
   above the least busy candidate. With none, a cold load goes where it would
   evict the fewest models in use, then the fewest models at all, and among
   those to the backend the model's name hashes highest with, so other Córtex
   instances load it on the same one.
2. Prompt prefix, among the backends within ``affinity_slack`` of the least
   busy: a conversation goes to its rendezvous home (the same on every
   instance), unless another backend holds at least ``PREFIX_GAIN`` more of
   the prompt's leading blocks (its turns were sent there while the home was busy),
   by this instance's index or, through Redis, another instance's (``Prompt.sent``).
3. Without a prompt, the least busy; ties take turns.
Busy is Córtex's own streams, or the engine's running and waiting requests
where the server reports them, whichever is more, per unit of weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .homes import bound
from .member import Member
from .prefix import Prompt, rendezvous

PREFIX_GAIN = 1  # blocks (256 bytes each) of its own prompt worth leaving the home for

Reason = Literal["warm", "loading", "cold", "prefix", "home", "least"]


@dataclass(frozen=True, slots=True)
class Choice:
    member: Member
    reason: Reason
    cached_blocks: int = 0
    hit: bool = False  # sent where this conversation, or its prompt's prefix, went before


def choose(
    model: str,
    roomy: Sequence[Member],
    prompt: Prompt | None,
    affinity_slack: float,
    cold_slack: float,
    turn: int,
    now: float = 0.0,
    balance: bool = True,
) -> Choice:
    pool, reason = _by_residency(model, roomy, cold_slack)
    least = min(m.load() for m in pool)
    near = [m for m in pool if m.load() <= least + affinity_slack]
    if prompt is None:
        tied = [m for m in near if m.load() == least]
        return Choice(tied[turn % len(tied)], "least" if reason == "warm" else reason)
    home = _home(prompt.conversation, near, now, balance)
    matches = {m.name: m.prefixes.match(prompt) for m in near}
    if prompt.sent is not None and prompt.sent[0] in matches:
        elsewhere, blocks = prompt.sent
        matches[elsewhere] = max(matches[elsewhere], blocks)
    best = max(near, key=lambda m: matches[m.name])
    if matches[best.name] >= matches[home.name] + PREFIX_GAIN:
        return Choice(best, "prefix", matches[best.name], hit=True)
    hit = matches[home.name] > 0 or home.prefixes.seen(prompt)
    return Choice(home, "home" if reason == "warm" else reason, matches[home.name], hit)


def _home(conversation: bytes, near: Sequence[Member], now: float, balance: bool) -> Member:
    """Where the conversation went before; else its rendezvous home, unless (``balance``)
    that already has its share of the active conversations (``homes.py``)."""
    for member in near:
        if member.homes.has(conversation, now):
            return member
    by_name = {m.name: m for m in near}
    ordered = [by_name[name] for name in rendezvous(conversation, list(by_name))]
    if not balance:
        return ordered[0]
    most = bound([m.homes.active(now) for m in near])
    return next((m for m in ordered if m.homes.active(now) < most), ordered[0])


def _by_residency(
    model: str, roomy: Sequence[Member], cold_slack: float
) -> tuple[list[Member], Reason]:
    if all(m.residency.loaded is None for m in roomy):
        return list(roomy), "warm"
    least = min(m.load() for m in roomy)
    warm = [m for m in roomy if m.residency.loaded is None or m.residency.is_loaded(model)]
    loading = [m for m in roomy if model in m.residency.loading]
    ranked: tuple[tuple[list[Member], Reason], ...] = ((warm, "warm"), (loading, "loading"))
    for found, reason in ranked:
        within = [m for m in found if m.load() <= least + cold_slack]
        if within:
            return within, reason
    rank = {m.name: (m.residency.evicts_busy(model), m.residency.crowd(model)) for m in roomy}
    best = min(rank.values())
    cold = [m for m in roomy if rank[m.name] == best]
    first = rendezvous(model.encode(), [m.name for m in cold])[0]
    return [m for m in cold if m.name == first], "cold"
