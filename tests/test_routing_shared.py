"""Córtex instances sharing where they sent prompts through one real redis-server.

Each conversation has a rendezvous home that every instance agrees on; when the
home is busy on one instance, the turn goes elsewhere, and the others learn
where through Redis. A Redis that stops answering costs a request at most the
lookup's timeout, once, and never fails it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterator

import pytest

from cortex.routing.shared import LOOKUP_TIMEOUT
from tests.conftest import StartGateway
from tests.fakes import FakeOllama, Script
from tests.redis_server import RedisServer, running_redis
from tests.test_router import MODEL, chat, served
from tests.test_routing_state import backends, homed_on

SLOW = "slow:latest"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture
def second() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.mark.parametrize("share", ["redis", "none"])
def test_instances_agree_on_a_conversation_whose_home_was_busy_on_one(
    share: str,
    redis_server: RedisServer,
    fake: FakeOllama,
    second: FakeOllama,
    start_gateway: StartGateway,
) -> None:
    fake.models = [MODEL, SLOW]
    second.models = [MODEL]
    fake.memory.preload(MODEL, SLOW)
    second.memory.preload(MODEL)
    fake.scripts[SLOW] = Script(count=40, delay=0.05)
    settings = {
        "backends": backends(fake, second),
        "redis_url": redis_server.url,
        "require_keys": False,
        "routing_share": share,
        "affinity_slack": 0,  # one stream makes the home busy
    }
    first, other = start_gateway(**settings), start_gateway(**settings)
    talk = homed_on("one")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(chat, first, [{"role": "user", "content": "long"}], SLOW)
        deadline = time.monotonic() + 5
        while served(fake) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        turn = chat(first, talk)
        assert turn.status_code == 200 and turn.headers["x-cortex-backend"] == "two"
        assert blocker.result().status_code == 200
    talk += [
        {"role": "assistant", "content": "the answer"},
        {"role": "user", "content": "and the next one"},
    ]
    follow = chat(other, talk)  # the home is idle here, and this instance never saw the turn
    assert follow.status_code == 200
    expected = "two" if share == "redis" else "one"
    assert follow.headers["x-cortex-backend"] == expected


def test_a_redis_that_stops_answering_costs_at_most_the_lookup_timeout(
    redis_server: RedisServer,
    fake: FakeOllama,
    second: FakeOllama,
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cortex.router")
    fake.models = second.models = [MODEL]
    gateway = start_gateway(
        backends=backends(fake, second), redis_url=redis_server.url, require_keys=False
    )
    talk = [{"role": "user", "content": "a question"}]
    assert chat(gateway, talk).status_code == 200
    redis_server.pause()
    try:
        timings = []
        for n in range(4):
            started = time.monotonic()
            answer = chat(gateway, [{"role": "user", "content": f"question {n}"}])
            timings.append(time.monotonic() - started)
            assert answer.status_code == 200
    finally:
        redis_server.resume()
    # Without the lookup's own timeout the client's (1 s) would hold the first request.
    assert max(timings) < LOOKUP_TIMEOUT + 0.4, timings
    outage = [r for r in caplog.records if "prefix" in r.getMessage()]
    assert len(outage) == 1 and "not answering" in outage[0].getMessage()
