"""Many backends behind one endpoint: choice, affinity, failover, circuits and the queue."""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from cortex.access.keys import generate_key, hash_key
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeOllama, Script

MODEL = "shared:latest"


@pytest.fixture
def second() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def chat(
    gateway: RunningGateway, messages: list[dict[str, str]], model: str = MODEL
) -> httpx.Response:
    return httpx.post(
        gateway.url + "/api/chat",
        content=orjson.dumps({"model": model, "messages": messages}),
        timeout=30,
    )


def served(fake: FakeOllama) -> int:
    return len([r for r in fake.requests if r.path == "/api/chat"])


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_request_goes_only_to_a_backend_that_has_its_model(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models, second.models = ["alpha:latest"], ["beta:latest"]
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}])
    for _ in range(3):
        assert chat(gateway, [{"role": "user", "content": "hi"}], "beta").status_code == 200
    assert (served(fake), served(second)) == (0, 3)
    missing = chat(gateway, [{"role": "user", "content": "hi"}], "gamma")
    assert missing.status_code == 404
    assert missing.json() == {"error": 'model "gamma" not found on any backend'}
    openai_missing = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gamma", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert openai_missing.status_code == 404
    assert openai_missing.json()["error"]["code"] == "model_not_found"


def test_a_model_no_backend_lists_is_a_404_while_another_backend_is_down(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    """A backend down since the start never listed its models. Once its circuit is open,
    a name no backend that answers lists is a 404 (a typo, not worth a retry), not the
    down backend's connection error (a 502, which the OpenAI SDK retries)."""
    fake.models = ["alpha:latest"]
    down = {"url": f"http://127.0.0.1:{unused_port()}", "name": "down"}
    gateway = start_gateway(
        backends=[{"url": fake.url}, down], circuit_failures=1, circuit_cooldown=60
    )
    status = httpx.get(gateway.url + "/cortex/backends").json()["backends"]
    assert next(b for b in status if b["name"] == "down")["circuit"] == "open"
    for path, body in (
        ("/api/chat", {"model": "gamma", "messages": [{"role": "user", "content": "hi"}]}),
        (
            "/v1/chat/completions",
            {"model": "gamma", "messages": [{"role": "user", "content": "hi"}]},
        ),
    ):
        missing = httpx.post(gateway.url + path, json=body, timeout=10)
        assert missing.status_code == 404, missing.text
        assert "gamma" in missing.text
    assert chat(gateway, [{"role": "user", "content": "hi"}], "alpha").status_code == 200


def test_the_catalogue_is_merged_without_duplicates(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models, second.models = ["alpha:latest", MODEL], [MODEL, "beta:latest"]
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": "openai+" + second.url}])
    names = [m["name"] for m in httpx.get(gateway.url + "/api/tags").json()["models"]]
    assert names == ["alpha:latest", MODEL, "beta:latest"]
    ids = [m["id"] for m in httpx.get(gateway.url + "/v1/models").json()["data"]]
    assert ids == names


def test_load_spreads_by_outstanding_streams(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.script = second.script = Script(tokens=["a", "b", "c"], delay=0.6)
    gateway = start_gateway(
        backends=[{"url": fake.url}, {"url": second.url}], routing="least-outstanding"
    )
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda i: chat(gateway, [{"role": "user", "content": f"q{i}"}]), range(6))
        )
    assert all(a.status_code == 200 for a in answers)
    assert (served(fake), served(second)) == (3, 3)


def test_weights_skew_the_share(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.script = second.script = Script(tokens=["a", "b"], delay=1.0)
    gateway = start_gateway(
        backends=[{"url": fake.url, "weight": 3}, {"url": second.url}],
        routing="least-outstanding",
    )
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: chat(gateway, [{"role": "user", "content": f"q{i}"}]), range(8)))
    assert (served(fake), served(second)) == (6, 2)


@pytest.mark.parametrize("rule", ["state", "affinity"])
def test_the_next_turn_of_a_conversation_goes_back_to_the_same_backend(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway, rule: str
) -> None:
    fake.models = second.models = [MODEL]
    fake.memory.preload(MODEL)
    second.memory.preload(MODEL)
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}], routing=rule)
    first_backend = {}
    for n in range(6):
        turn = [{"role": "user", "content": f"conversation {n}"}]
        response = chat(gateway, turn)
        first_backend[n] = response.headers["x-cortex-backend"]
    assert len(set(first_backend.values())) == 2  # the first turns were spread
    for n in range(6):
        turn = [
            {"role": "user", "content": f"conversation {n}"},
            {"role": "assistant", "content": "Había una vez"},
            {"role": "user", "content": "¿Y luego?"},
        ]
        assert chat(gateway, turn).headers["x-cortex-backend"] == first_backend[n]
    status = httpx.get(gateway.url + "/cortex/backends").json()
    assert sum(b["affinity_hits"] for b in status["backends"]) == 6


@pytest.mark.parametrize("rule", ["state", "affinity"])
def test_affinity_gives_way_when_its_backend_is_much_busier(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway, rule: str
) -> None:
    fake.models = second.models = [MODEL]
    fake.memory.preload(MODEL)
    second.memory.preload(MODEL)
    gateway = start_gateway(
        backends=[{"url": fake.url}, {"url": second.url}], affinity_slack=1, routing=rule
    )
    first = chat(gateway, [{"role": "user", "content": "story"}])
    home = first.headers["x-cortex-backend"]
    busy = fake if home == fake.url.removeprefix("http://") else second
    busy.script = Script(count=200, delay=0.02)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        # Three long answers pinned to the same conversation's backend by affinity...
        blockers = [
            pool.submit(
                chat,
                gateway,
                [
                    {"role": "user", "content": "story"},
                    {"role": "assistant", "content": "x"},
                    {"role": "user", "content": f"more {i}"},
                ],
            )
            for i in range(2)
        ]
        time.sleep(0.3)
        follow_up = chat(
            gateway,
            [
                {"role": "user", "content": "story"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "and then?"},
            ],
        )
        for blocker in blockers:
            blocker.result()
    assert follow_up.headers["x-cortex-backend"] != home


def test_a_dead_backend_loses_no_request_that_had_not_started(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = [MODEL]
    dead = f"http://127.0.0.1:{unused_port()}"
    gateway = start_gateway(backends=[{"url": dead, "models": [MODEL]}, {"url": fake.url}])
    answers = [chat(gateway, [{"role": "user", "content": f"q{i}"}]) for i in range(8)]
    assert [a.status_code for a in answers] == [200] * 8
    assert served(fake) == 8
    status = {b["name"]: b for b in httpx.get(gateway.url + "/cortex/backends").json()["backends"]}
    assert status["backend-1"]["circuit"] == "open"


def test_killing_a_backend_under_load_fails_over_requests_not_yet_streaming(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    doomed = FakeOllama().start()
    fake.models = doomed.models = [MODEL]
    fake.script = doomed.script = Script(tokens=["a", "b"], delay=0.05)
    gateway = start_gateway(backends=[{"url": doomed.url}, {"url": fake.url}])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = list(
            pool.map(lambda i: chat(gateway, [{"role": "user", "content": f"a{i}"}]), range(4))
        )
        doomed.stop()
        after = list(
            pool.map(lambda i: chat(gateway, [{"role": "user", "content": f"b{i}"}]), range(8))
        )
    for answer in first + after:
        assert answer.status_code == 200
        assert orjson.loads(answer.content.splitlines()[-1])["done"] is True


def test_a_backend_that_comes_back_takes_traffic_again(start_gateway: StartGateway) -> None:
    port = unused_port()
    with FakeOllama() as steady:
        steady.models = [MODEL]
        gateway = start_gateway(
            backends=[{"url": f"http://127.0.0.1:{port}", "models": [MODEL]}, {"url": steady.url}],
            health_interval=0.2,
            circuit_cooldown=60,
        )
        for i in range(3):
            assert chat(gateway, [{"role": "user", "content": f"q{i}"}]).status_code == 200
        revived = FakeOllama(models=[MODEL])
        revived.memory.preload(MODEL)  # else the rule rightly keeps to where it is loaded
        revived.port = port
        with revived:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                backends = httpx.get(gateway.url + "/cortex/backends").json()["backends"]
                if backends[0]["circuit"] == "closed":
                    break
                time.sleep(0.1)
            assert backends[0]["circuit"] == "closed"
            for i in range(4):
                chat(gateway, [{"role": "user", "content": f"again {i}"}])
            assert served(revived) >= 1


def test_saturated_backends_queue_requests_in_order(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(tokens=["a", "b"], delay=0.15)
    gateway = start_gateway(backends=[{"url": fake.url, "max_concurrent": 1}])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = []
        for i in range(4):
            futures.append(
                pool.submit(chat, gateway, [{"role": "user", "content": f"q{i}"}], "fake-llama")
            )
            # The next one is sent only once this one is in the gateway: at the backend or queued.
            wait_for(lambda i=i: served(fake) + queued(gateway) > i)
        answers = [f.result() for f in futures]
    assert all(a.status_code == 200 for a in answers)
    order = [r.json["messages"][0]["content"] for r in fake.requests if r.path == "/api/chat"]
    assert order == ["q0", "q1", "q2", "q3"]
    assert "x-cortex-queue-ms" in answers[-1].headers
    assert int(answers[-1].headers["x-cortex-queue-ms"]) > 100


def queued(gateway: RunningGateway) -> int:
    return int(httpx.get(gateway.url + "/cortex/backends").json()["queued"])


def wait_for(condition: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_full_queue_is_a_503_with_retry_after(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(tokens=["a"], delay=1.0)
    gateway = start_gateway(backends=[{"url": fake.url, "max_concurrent": 1}], queue_size=1)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        busy = pool.submit(chat, gateway, [{"role": "user", "content": "1"}], "fake-llama")
        time.sleep(0.2)
        queued = pool.submit(chat, gateway, [{"role": "user", "content": "2"}], "fake-llama")
        time.sleep(0.2)
        rejected = chat(gateway, [{"role": "user", "content": "3"}], "fake-llama")
        assert busy.result().status_code == queued.result().status_code == 200
    assert rejected.status_code == 503
    assert int(rejected.headers["retry-after"]) >= 1
    assert "queue is full" in rejected.json()["error"]


def test_a_long_wait_in_the_queue_is_a_503(fake: FakeOllama, start_gateway: StartGateway) -> None:
    fake.script = Script(tokens=["a"], delay=1.5)
    gateway = start_gateway(backends=[{"url": fake.url, "max_concurrent": 1}], queue_timeout=0.3)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        busy = pool.submit(chat, gateway, [{"role": "user", "content": "1"}], "fake-llama")
        time.sleep(0.2)
        late = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "fake-llama", "messages": [{"role": "user", "content": "2"}]},
            timeout=10,
        )
        assert busy.result().status_code == 200
    assert late.status_code == 503
    assert "retry-after" in late.headers
    assert late.json()["error"]["type"] == "server_error"


def test_backend_status_endpoint(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    gateway = start_gateway(
        backends=[
            {"url": fake.url, "name": "gpu-box", "max_concurrent": 4},
            {"url": second.url, "weight": 2},
        ]
    )
    chat(gateway, [{"role": "user", "content": "hi"}])
    status = httpx.get(gateway.url + "/cortex/backends").json()
    assert status["queued"] == 0
    first = status["backends"][0]
    assert first["name"] == "gpu-box"
    assert first["kind"] == "ollama"
    assert first["circuit"] == "closed"
    assert first["max_concurrent"] == 4
    assert first["models"] == [MODEL]
    assert sum(b["requests"] for b in status["backends"]) == 1
    assert any(b["first_byte_ms"] is not None for b in status["backends"])


def test_one_broken_model_does_not_shut_out_the_others(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = [MODEL, "broken:latest"]
    broken = b'{"error":"llama runner process has terminated: exit status 2"}'
    fake.scripts["broken:latest"] = Script(fault="status", status=500, error_body=broken)
    gateway = start_gateway(circuit_failures=2, circuit_cooldown=60)
    for i in range(4):  # more faults than the threshold: the circuit of a lone backend
        failed = chat(gateway, [{"role": "user", "content": f"q{i}"}], "broken:latest")
        assert failed.status_code == 500  # never opens: the server's own answer every time
        assert "llama runner process has terminated" in failed.json()["error"]
    healthy = chat(gateway, [{"role": "user", "content": "hi"}])
    assert healthy.status_code == 200
    status = httpx.get(gateway.url + "/cortex/backends").json()["backends"][0]
    assert status["circuit"] == "closed"
    assert status["failing_models"] == {"broken:latest": "open"}


def test_a_model_failing_on_one_backend_goes_to_another(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.script = Script(fault="status", status=500)
    gateway = start_gateway(
        backends=[{"url": fake.url, "name": "sick"}, {"url": second.url, "name": "well"}],
        circuit_failures=1,
        circuit_cooldown=60,
    )
    answers = [chat(gateway, [{"role": "user", "content": f"q{i}"}]) for i in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.headers["x-cortex-backend"] for a in answers} == {"well"}
    assert served(fake) == 1  # one fault opened that model's circuit there
    status = {b["name"]: b for b in httpx.get(gateway.url + "/cortex/backends").json()["backends"]}
    assert status["sick"]["circuit"] == "closed"
    assert status["sick"]["failing_models"] == {MODEL: "open"}


def test_a_model_that_never_starts_answering_stops_being_sent_there(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    """A wedged runner: the server takes the request and sends nothing, while its catalogue
    answers every health check. The first-byte timeouts open that model's circuit there,
    which the checks do not close, so requests stop waiting on it."""
    fake.models = second.models = [MODEL]
    fake.script = Script(fault="stall_before_first", stall=3)
    gateway = start_gateway(
        backends=[{"url": fake.url, "name": "stuck"}, {"url": second.url, "name": "well"}],
        routing="round-robin",
        first_byte_timeout=0.3,
        health_interval=0.1,
        circuit_failures=2,
        circuit_cooldown=60,
    )

    def stuck() -> dict[str, Any]:
        backends = httpx.get(gateway.url + "/cortex/backends").json()["backends"]
        return next(b for b in backends if b["name"] == "stuck")  # type: ignore[no-any-return]

    for i in range(8):  # round-robin: half of them are sent to the stuck one until it opens
        assert chat(gateway, [{"role": "user", "content": f"q{i}"}]).status_code == 200
        if stuck()["failing_models"]:
            break
    assert stuck()["failing_models"] == {MODEL: "open"}
    assert stuck()["circuit"] == "closed"  # the server is up: its catalogue answers
    asked = served(fake)
    for i in range(4):
        began = time.monotonic()
        answer = chat(gateway, [{"role": "user", "content": f"after {i}"}])
        assert answer.headers["x-cortex-backend"] == "well"
        assert time.monotonic() - began < 0.3  # no first-byte timeout waited on first
    assert served(fake) == asked


def test_one_heavy_key_does_not_starve_another_in_the_queue(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    heavy, light = generate_key(), generate_key()
    keys = [
        {"name": "heavy", "key_hash": hash_key(heavy)},
        {"name": "light", "key_hash": hash_key(light)},
    ]
    fake.script = Script(tokens=["a", "b"], delay=0.4)  # all are queued before the first ends
    gateway = start_gateway(
        backends=[{"url": fake.url, "max_concurrent": 1}], keys=keys, ops_require_key=False
    )

    def ask(key: str, text: str) -> httpx.Response:
        return httpx.post(
            gateway.url + "/api/chat",
            json={"model": "fake-llama", "messages": [{"role": "user", "content": text}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = []
        for n, (key, text) in enumerate(
            [(heavy, "h0"), (heavy, "h1"), (heavy, "h2"), (heavy, "h3"), (light, "l0")]
        ):
            futures.append(pool.submit(ask, key, text))
            wait_for(lambda n=n: served(fake) + queued(gateway) > n)
        answers = [f.result() for f in futures]
    assert all(a.status_code == 200 for a in answers)
    order = [r.json["messages"][0]["content"] for r in fake.requests if r.path == "/api/chat"]
    assert order == ["h0", "h1", "l0", "h2", "h3"], "light's one request is served in turn"
    assert answers[4].headers["x-cortex-queue-position"] == "2"
    assert answers[3].headers["x-cortex-queue-position"] == "3"
