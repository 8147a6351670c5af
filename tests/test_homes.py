"""Bounded-load homes: conversations spread evenly, and each keeps its home."""

from __future__ import annotations

from cortex.routing import scorer
from cortex.routing.homes import Homes, bound
from cortex.routing.member import Member
from cortex.routing.prefix import prompt_of, rendezvous
from tests.test_routing_state import member


def place(members: list[Member], opening: str, now: float) -> Member:
    prompt = prompt_of("m", [{"role": "user", "content": opening}])
    assert prompt is not None
    chosen = scorer.choose("m", members, prompt, 2, 4, 0, now).member
    chosen.homes.touch(prompt.conversation, now)
    return chosen


def test_the_bound_is_the_even_share_rounded_up() -> None:
    assert bound([0, 0, 0]) == 1
    assert bound([1, 1, 0]) == 1
    assert bound([1, 1, 1]) == 2
    assert bound([2, 2, 1]) == 2


def test_six_conversations_on_three_backends_take_two_each_and_keep_their_homes() -> None:
    members = [member("one"), member("two"), member("three")]
    openings = [f"conversation {i}" for i in range(6)]
    homes = {opening: place(members, opening, 0.0) for opening in openings}
    assert sorted(m.homes.active(0.0) for m in members) == [2, 2, 2]
    for opening in openings:  # later turns: the same opening, more messages
        assert place(members, opening, 1.0) is homes[opening]


def test_conversations_idle_for_the_window_no_longer_count() -> None:
    homes = Homes(window=10)
    homes.touch(b"a", 0.0)
    homes.touch(b"b", 5.0)
    assert homes.active(9.0) == 2
    assert homes.active(12.0) == 1
    assert not homes.has(b"a", 12.0)


def test_what_is_remembered_is_bounded() -> None:
    homes = Homes(remembered=3)
    for i in range(5):
        homes.touch(bytes([i]), 0.0)
    assert homes.active(0.0) == 3


def test_without_balance_every_conversation_goes_to_its_rendezvous_home() -> None:
    members = [member("one"), member("two"), member("three")]
    for i in range(6):
        prompt = prompt_of("m", [{"role": "user", "content": f"conversation {i}"}])
        assert prompt is not None
        chosen = scorer.choose("m", members, prompt, 2, 4, 0, 0.0, balance=False).member
        chosen.homes.touch(prompt.conversation, 0.0)
        assert chosen.name == rendezvous(prompt.conversation, ["one", "two", "three"])[0]
