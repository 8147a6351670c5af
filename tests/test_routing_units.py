"""The router's parts on their own: circuit, affinity, admission queue (with explicit time)
and failover."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cortex.config import Settings
from cortex.errors import (
    IdleTimeout,
    ModelNotFound,
    Overloaded,
    UpstreamStatus,
    UpstreamUnreachable,
)
from cortex.gateway import Gateway
from cortex.routing.affinity import Affinity, prefix_keys
from cortex.routing.circuit import Circuit
from cortex.routing.failover import Failover
from cortex.routing.queue import AdmissionQueue, Waiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- circuit -----------------------------------------------------------------------------


def test_a_circuit_opens_after_its_threshold_of_faults_in_a_row() -> None:
    circuit = Circuit(threshold=3, cooldown=10)
    circuit.failure(0)
    circuit.failure(1)
    assert circuit.admits(1) and circuit.state == "closed"
    circuit.failure(2)
    assert circuit.state == "open"
    assert not circuit.admits(5)
    assert circuit.retry_in(5) == 7


def test_a_success_between_faults_starts_the_count_again() -> None:
    circuit = Circuit(threshold=2, cooldown=10)
    circuit.failure(0)
    circuit.success()
    circuit.failure(1)
    assert circuit.state == "closed"


def test_after_the_cooldown_one_probe_goes_through() -> None:
    circuit = Circuit(threshold=1, cooldown=10)
    circuit.failure(0)
    assert circuit.admits(10) and circuit.state == "half-open"
    circuit.on_admit()
    assert not circuit.admits(10.5), "a second request while the probe runs"
    circuit.success()
    assert circuit.state == "closed" and circuit.admits(11)


def test_a_failed_probe_opens_the_circuit_again_for_a_whole_cooldown() -> None:
    circuit = Circuit(threshold=5, cooldown=10)
    for t in range(5):
        circuit.failure(t)
    assert circuit.admits(14)
    circuit.on_admit()
    circuit.failure(14)
    assert circuit.state == "open" and not circuit.admits(23) and circuit.admits(24)


def test_an_abandoned_probe_lets_another_through() -> None:
    circuit = Circuit(threshold=1, cooldown=1)
    circuit.failure(0)
    assert circuit.admits(1)
    circuit.on_admit()
    circuit.abandon()
    assert circuit.admits(1)


def test_retry_in_is_at_least_a_second() -> None:
    circuit = Circuit(threshold=1, cooldown=10)
    circuit.failure(0)
    assert circuit.retry_in(9.9) == 1.0


# ---- affinity ----------------------------------------------------------------------------


def test_the_next_turn_of_a_conversation_finds_its_backend() -> None:
    affinity = Affinity()
    turn = [{"role": "user", "content": "hola"}]
    affinity.remember(prefix_keys("m", turn)[0], "gpu-a")
    follow_up = [*turn, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "y?"}]
    keys = prefix_keys("m", follow_up)
    assert [affinity.recall(k) for k in keys[1:]] == [None, "gpu-a"]


def test_fingerprints_depend_on_the_model_and_every_message() -> None:
    turn = [{"role": "user", "content": "hola"}]
    assert prefix_keys("a", turn) != prefix_keys("b", turn)
    assert prefix_keys("a", turn) != prefix_keys("a", [{"role": "user", "content": "hol"}])
    assert prefix_keys("a", []) == []
    assert len(prefix_keys("a", turn * 5)) == 3


def test_affinity_forgets_after_its_ttl() -> None:
    clock = Clock()
    affinity = Affinity(ttl=600, clock=clock)
    affinity.remember(b"k", "gpu-a")
    clock.now += 600
    assert affinity.recall(b"k") == "gpu-a"
    clock.now += 0.1
    assert affinity.recall(b"k") is None


def test_affinity_is_bounded_and_drops_the_least_recently_used() -> None:
    affinity = Affinity(entries=2)
    affinity.remember(b"a", "x")
    affinity.remember(b"b", "y")
    affinity.remember(b"a", "x")  # a used again: b is now the oldest
    affinity.remember(b"c", "z")
    assert len(affinity) == 2
    assert affinity.recall(b"b") is None and affinity.recall(b"a") == "x"


# ---- admission queue ---------------------------------------------------------------------


def test_waiters_are_served_first_in_first_out() -> None:
    async def scenario() -> list[str]:
        queue = AdmissionQueue[str](size=10, timeout=5)
        waits = [asyncio.create_task(queue.wait(f"m{i}", frozenset())) for i in range(3)]
        await asyncio.sleep(0)
        assert len(queue) == 3
        served: list[str] = []

        def pick(waiter: Waiter[str]) -> str | None:
            if len(served) < 2:
                served.append(waiter.model)
                return "backend"
            return None

        queue.dispatch(pick)
        done = await asyncio.gather(waits[0], waits[1])
        assert done == ["backend", "backend"] and not waits[2].done()
        waits[2].cancel()
        return served

    assert asyncio.run(scenario()) == ["m0", "m1"]


def test_a_waiter_passed_over_keeps_its_place() -> None:
    async def scenario() -> str:
        queue = AdmissionQueue[str](size=10, timeout=5)
        first = asyncio.create_task(queue.wait("busy-model", frozenset()))
        second = asyncio.create_task(queue.wait("free-model", frozenset()))
        await asyncio.sleep(0)
        queue.dispatch(lambda w: "b" if w.model == "free-model" else None)
        assert await second == "b"
        queue.dispatch(lambda w: "a")
        return await first

    assert asyncio.run(scenario()) == "a"


def test_a_full_queue_refuses_at_once() -> None:
    async def scenario() -> None:
        queue = AdmissionQueue[str](size=1, timeout=5)
        waiting = asyncio.create_task(queue.wait("m", frozenset()))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="queue is full"):
            await queue.wait("m", frozenset())
        waiting.cancel()

    asyncio.run(scenario())


def test_a_wait_past_the_timeout_is_a_503_and_leaves_the_queue() -> None:
    async def scenario() -> None:
        queue = AdmissionQueue[str](size=5, timeout=0.01)
        with pytest.raises(Overloaded, match="stayed busy") as refused:
            await queue.wait("m", frozenset())
        assert refused.value.retry_after == 1
        assert len(queue) == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def scenario() -> None:
        queue = AdmissionQueue[str](size=5, timeout=5)
        waiting = asyncio.create_task(queue.wait("m", frozenset()))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert len(queue) == 0

    asyncio.run(scenario())


def test_a_backend_handed_to_a_waiter_that_left_in_the_same_turn_is_given_back() -> None:
    """The slot is reserved when it is handed over; a waiter cancelled (its client left) or
    timed out before it woke would otherwise hold it forever, and with ``max_concurrent``
    every later request would queue until its 503."""

    async def scenario() -> list[str]:
        queue = AdmissionQueue[str](size=5, timeout=5)
        given_back: list[str] = []
        waiting = asyncio.create_task(queue.wait("m", frozenset(), give_back=given_back.append))
        await asyncio.sleep(0)
        queue.dispatch(lambda waiter: "slot")
        waiting.cancel()  # before the waiter woke to take the slot
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(queue) == 0
        return given_back

    assert asyncio.run(scenario()) == ["slot"]


def test_a_slot_handed_to_a_request_that_left_is_free_for_the_next() -> None:
    """End to end through the router: one backend with ``max_concurrent`` 1, a request
    queued behind another, handed the slot and cancelled (its client left) before it woke.
    The next request must get the slot at once, not queue until its 503."""

    async def scenario() -> tuple[int, int]:
        settings = Settings(backends=[{"url": "http://127.0.0.1:9", "max_concurrent": 1}])
        router = Gateway(settings).router
        [member] = router.members
        first = await router.acquire("m")
        queued = asyncio.create_task(router.acquire("m"))
        await asyncio.sleep(0)
        first.release()  # hands the slot to the queued request
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        left = member.in_flight
        nxt = asyncio.create_task(router.acquire("m"))
        await asyncio.sleep(0)
        assert nxt.done(), "the next request queued for a slot no one holds"
        nxt.result().release()
        return left, router.queued

    assert asyncio.run(scenario()) == (0, 0)


# ---- failover ----------------------------------------------------------------------------


class Alternatives:
    """A router stand-in: which backends could serve the model."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)

    def has_alternative(self, model: str, excluded: frozenset[str]) -> bool:
        return bool(self.names - excluded)


def failover(*names: str, max_attempts: int = 3) -> Failover:
    return Failover(Alternatives(*names), "llama3.2", max_attempts)  # type: ignore[arg-type]


def test_a_backends_own_fault_sends_the_request_to_another_backend() -> None:
    plan = failover("a", "b")
    plan.started()
    assert plan.retry(UpstreamUnreachable("refused"), "a")
    assert plan.excluded == {"a"}
    plan.started()
    assert not plan.retry(UpstreamUnreachable("refused"), "b"), "no backend is left"


def test_a_fault_that_is_not_the_backends_is_not_retried() -> None:
    plan = failover("a", "b")
    plan.started()
    assert not plan.retry(ModelNotFound("no such model"), "a")
    assert not plan.retry(UpstreamStatus("no such model", status=404), "a")
    assert plan.excluded == frozenset()


def test_no_more_tries_than_max_attempts() -> None:
    plan = failover("a", "b", "c", "d", max_attempts=2)
    plan.started()
    assert plan.retry(IdleTimeout("stalled"), "a")
    plan.started()
    assert not plan.retry(IdleTimeout("stalled"), "b")


def test_a_lease_that_fails_marks_its_backend_and_is_released_either_way() -> None:
    """``Failover.lease``'s block: a backend's own fault marks the attempt failed on it (so
    the retry goes elsewhere) and counts against its circuit; any end releases the slot."""

    async def scenario() -> tuple[str | None, int, int, str | None, int]:
        settings = Settings(backends=[{"url": "http://127.0.0.1:9", "max_concurrent": 1}])
        router = Gateway(settings).router
        [member] = router.members
        plan = Failover(router, "m", 3)
        with pytest.raises(UpstreamUnreachable):
            async with plan.lease() as lease:
                assert member.in_flight == 1 and lease.member is member
                raise UpstreamUnreachable("refused")
        failed = (plan.failed_on, member.in_flight, member.circuit.failures)
        with pytest.raises(KeyError):
            async with plan.lease():
                raise KeyError("not the backend's")
        return (*failed, plan.failed_on, member.in_flight)

    assert asyncio.run(scenario()) == ("backend-1", 0, 1, None, 0)


def test_waiters_are_served_in_turns_across_keys() -> None:
    async def scenario() -> list[str]:
        queue = AdmissionQueue[str](size=20, timeout=5)
        order = [("heavy", 5), ("light", 1), ("other", 2)]
        waits = []
        for party, count in order:
            for n in range(count):
                waits.append(asyncio.create_task(queue.wait(f"{party}{n}", frozenset(), party)))
                await asyncio.sleep(0)
        served: list[str] = []

        def pick(waiter: Waiter[str]) -> str:
            served.append(waiter.model)
            return "backend"

        queue.dispatch(pick)
        await asyncio.gather(*waits)
        return served

    assert asyncio.run(scenario()) == [
        "heavy0", "light0", "other0", "heavy1", "other1", "heavy2", "heavy3", "heavy4",
    ]  # fmt: skip


def test_a_new_waiter_is_told_its_place_in_the_turns() -> None:
    async def scenario() -> None:
        queue = AdmissionQueue[str](size=20, timeout=5)
        heavy = []
        for _ in range(4):
            heavy.append(asyncio.create_task(queue.wait("m", frozenset(), "heavy")))
            await asyncio.sleep(0)
        assert queue.position("heavy") == 5
        assert queue.position("light") == 2, "after heavy's first, before its second"
        waiting = asyncio.create_task(queue.wait("m", frozenset(), "light"))
        await asyncio.sleep(0)
        assert [w.party for w in queue.order()][:3] == ["heavy", "light", "heavy"]
        assert [w.position for w in queue.order()][1] == 2
        assert queue.position("light") == 4
        queue.cancel_all()
        await asyncio.gather(waiting, *heavy, return_exceptions=True)

    asyncio.run(scenario())


def one_at_a_time() -> Callable[[Waiter[str]], str | None]:
    handed: list[Waiter[str]] = []

    def pick(waiter: Waiter[str]) -> str | None:
        if handed:
            return None
        handed.append(waiter)
        return "backend"

    return pick


def test_retry_after_follows_the_measured_drain_rate() -> None:
    async def scenario() -> None:
        clock = Clock()
        queue = AdmissionQueue[str](size=50, timeout=60, clock=clock)
        assert queue.retry_after() == 30, "half the timeout until a rate is measured"
        waits = [asyncio.create_task(queue.wait("m", frozenset())) for _ in range(25)]
        await asyncio.sleep(0)
        for _ in range(5):  # one handed over every 2 s
            queue.dispatch(one_at_a_time())
            clock.now += 2
        assert len(queue) == 20
        assert queue.retry_after() == 40  # 20 waiting at 0.5 a second
        with pytest.raises(Overloaded) as refused:
            full = AdmissionQueue[str](size=0, timeout=60)
            await full.wait("m", frozenset())
        assert refused.value.queue_position == 1
        queue.cancel_all()
        await asyncio.gather(*waits, return_exceptions=True)

    asyncio.run(scenario())
