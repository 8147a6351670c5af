"""A finished request leaves nothing for the garbage collector: no loop of references
holds its objects, so reference counting frees them all at once.

Each object left in a loop waits for a young collection, and a young collection stops
every stream while it walks what is left (bench/concurrency.py's tail). The gateway
runs in this process, so the objects of its request path that a collection would find
are looked for by type: Córtex's own, and uvicorn's per-request cycle.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.otlp_receiver import OTLPReceiver

MESSAGES = [{"role": "user", "content": "hola"}]
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/api/chat", {"model": DEFAULT_MODEL, "messages": MESSAGES}),
    ("/api/chat", {"model": DEFAULT_MODEL, "messages": MESSAGES, "stream": False}),
    ("/v1/chat/completions", {"model": DEFAULT_MODEL, "messages": MESSAGES, "stream": True}),
    ("/v1/chat/completions", {"model": DEFAULT_MODEL, "messages": MESSAGES}),
    ("/v1/messages", {"model": DEFAULT_MODEL, "messages": MESSAGES, "max_tokens": 64}),
    ("/v1/responses", {"model": DEFAULT_MODEL, "input": "hola", "stream": True}),
    ("/api/chat", {"model": "no-such-model", "messages": MESSAGES}),
]


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What each collection finds, kept in ``gc.garbage`` instead of freed."""
    gc.collect()
    gc.garbage.clear()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def request_objects(garbage: list[object]) -> Counter[str]:
    found: Counter[str] = Counter()
    for obj in garbage:
        kind = type(obj)
        if kind.__module__.startswith("cortex") or kind.__name__ == "RequestResponseCycle":
            found[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return found


@pytest.fixture(params=["", "traced"])
def traced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Without telemetry, and with it on (spans and metrics to a real OTLP receiver)."""
    if not request.param:
        yield False
        return
    with OTLPReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        yield True


@pytest.mark.parametrize("upstream", ["ollama", "openai"])
def test_answered_requests_leave_no_loops_of_references(
    traced: bool,
    fake: FakeOllama,
    start_gateway: StartGateway,
    upstream: str,
    request: pytest.FixtureRequest,
) -> None:
    fake.script = Script(tokens=("ho", "la"))
    prefix = "openai+" if upstream == "openai" else ""
    gw = start_gateway(upstream=prefix + fake.url)
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for path, payload in REQUESTS:  # the first of each path builds what lives on
            client.post(path, json=payload)
        garbage = request.getfixturevalue("saved_garbage")
        statuses = [client.post(path, json=payload).status_code for path, payload in REQUESTS]
        gc.collect()
    assert statuses == [200] * (len(REQUESTS) - 1) + [404]
    assert request_objects(garbage) == Counter()
