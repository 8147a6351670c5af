"""x-cortex-overhead-ms: Córtex's own share of the time before the response head."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}
HEAD_DELAY = 0.2


def overhead_ms(response: httpx.Response) -> float:
    value = float(response.headers["x-cortex-overhead-ms"])
    assert value >= 0
    return value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", HELLO),  # streamed, same dialect
        ("/api/chat", {**HELLO, "stream": False}),  # whole, same dialect
        ("/v1/chat/completions", {**HELLO, "stream": True}),  # streamed, translated
        ("/v1/chat/completions", HELLO),  # whole, translated
    ],
)
def test_overhead_leaves_out_the_upstreams_time(
    fake: FakeOllama, start_gateway: StartGateway, path: str, body: dict[str, object]
) -> None:
    fake.script = Script(header_delay=HEAD_DELAY)
    gateway = start_gateway()
    began = time.monotonic()
    with httpx.stream("POST", gateway.url + path, json=body, timeout=10) as response:
        head_ms = (time.monotonic() - began) * 1000
        assert response.status_code == 200
        response.read()
    # the head waited on the upstream's 200 ms; Córtex's share of it cannot include them
    assert head_ms >= HEAD_DELAY * 1000
    assert overhead_ms(response) < head_ms - HEAD_DELAY * 1000


def test_overhead_leaves_out_a_failed_attempts_upstream_time(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    with FakeOllama() as good:
        fake.script = Script(fault="status", status=503, header_delay=HEAD_DELAY)
        gateway = start_gateway(
            backends=[{"url": fake.url}, {"url": good.url}], routing="round-robin"
        )
        timings = []
        for _ in range(2):  # taking turns, one of them tries the slow failing backend first
            began = time.monotonic()
            response = httpx.post(gateway.url + "/api/chat", json=HELLO, timeout=10)
            assert response.status_code == 200
            timings.append((overhead_ms(response), (time.monotonic() - began) * 1000))
        failed_over = [(mine, total) for mine, total in timings if total >= HEAD_DELAY * 1000]
        assert failed_over, "no request failed over"
        for mine, total in failed_over:
            assert mine < total - HEAD_DELAY * 1000


def test_overhead_leaves_out_the_time_the_client_took_to_send_its_body(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway()
    pause = 0.3

    def slowly() -> Iterator[bytes]:
        yield b'{"model": "%s", "messages": [{"role": "user", ' % DEFAULT_MODEL.encode()
        time.sleep(pause)  # a client on a slow link: its time, not Córtex's
        yield b'"content": "hola"}]}'

    began = time.monotonic()
    response = httpx.post(gateway.url + "/api/chat", content=slowly(), timeout=10)
    took_ms = (time.monotonic() - began) * 1000
    assert response.status_code == 200
    assert took_ms >= pause * 1000
    assert overhead_ms(response) < pause * 1000 / 2
