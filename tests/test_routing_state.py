"""The ``state`` rule: model residency, cold loads, prompt prefixes and rendezvous homes.

Units first (the ``/api/ps`` reader, the prefix index, the scorer on members built
by hand), then Córtex in front of fake Ollama servers whose memory loads and evicts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import pytest

from cortex.config import BackendSettings, Settings
from cortex.errors import UpstreamUnreachable
from cortex.gateway import Gateway
from cortex.routing import scorer
from cortex.routing.circuit import Circuit
from cortex.routing.engine import EngineLoad, from_metrics, from_slots
from cortex.routing.member import Member
from cortex.routing.prefix import BLOCK, PrefixIndex, prompt_of, rendezvous
from cortex.routing.residency import Loaded, Residency, parse_ps
from tests.conftest import StartGateway
from tests.fakes import FakeOllama, Script
from tests.fakes.ollama_wire import go_time, ps_body
from tests.test_router import MODEL, chat, served

# ---- /api/ps -----------------------------------------------------------------------------


def test_ps_is_read_with_ollama_nanosecond_times() -> None:
    loaded = parse_ps(ps_body(["a:latest", "b:7b"], "2026-12-02T17:00:00.123456789Z"))
    assert list(loaded) == ["a:latest", "b:7b"]
    assert loaded["a:latest"].expires_at == pytest.approx(1796230800.123456)
    assert loaded["a:latest"].size_vram > 0


@pytest.mark.parametrize("body", [b"", b"[]", b'{"models": 3}', b"not json"])
def test_a_ps_answer_not_shaped_as_ollamas_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_ps(body)


def test_an_expired_model_counts_as_unloaded() -> None:
    residency = Residency({"m:latest": Loaded("m:latest", 1, expires_at=100.0)})
    assert residency.is_loaded("m", now=99.0)
    assert not residency.is_loaded("m", now=101.0)
    assert not Residency().is_loaded("m"), "unknown residency is not a loaded model"


def test_busy_models_are_what_a_load_could_evict() -> None:
    residency = Residency({"a": Loaded("a", 1, None), "b": Loaded("b", 1, None)})
    residency.started("a")
    assert residency.evicts_busy("c") == 1 and residency.crowd("c") == 2
    residency.ended("a")
    assert residency.evicts_busy("c") == 0


# ---- prefixes and rendezvous -------------------------------------------------------------


def conversation(system: str, *turns: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}]
    for n, text in enumerate(turns):
        messages.append({"role": "user" if n % 2 == 0 else "assistant", "content": text})
    return messages


def test_a_longer_turn_matches_the_blocks_of_the_earlier_one() -> None:
    system = "You are a careful assistant. " * 40  # about 1,160 bytes: four whole blocks
    first = prompt_of("m", conversation(system, "hello"))
    later = prompt_of("m", conversation(system, "hello", "hi there", "and then?"))
    assert first is not None and later is not None
    index = PrefixIndex()
    index.add(first)
    assert index.match(later) >= len(system) // BLOCK
    assert index.seen(later), "the same opening names the same conversation"
    other = prompt_of("other-model", conversation(system, "hello"))
    assert other is not None and index.match(other) == 0


def test_the_index_is_bounded() -> None:
    index = PrefixIndex(capacity=10)
    for n in range(50):
        prompt = prompt_of("m", conversation(f"system {n} " * 100, "q"))
        assert prompt is not None
        index.add(prompt)
    assert len(index) == 10


def test_rendezvous_order_is_the_same_whatever_order_the_names_come_in() -> None:
    names = ["gpu-a", "gpu-b", "gpu-c"]
    assert rendezvous(b"key", names) == rendezvous(b"key", list(reversed(names)))
    homes = {rendezvous(f"conversation {n}".encode(), names)[0] for n in range(30)}
    assert homes == set(names), "keys spread over every backend"
    # Removing a backend moves only the keys that lived on it.
    for n in range(30):
        key = f"conversation {n}".encode()
        home = rendezvous(key, names)[0]
        if home != "gpu-c":
            assert rendezvous(key, ["gpu-a", "gpu-b"])[0] == home


# ---- the scorer on members built by hand -------------------------------------------------


def member(name: str, loaded: list[str] | None = None, in_flight: int = 0) -> Member:
    m = Member(
        BackendSettings(name=name, url="http://127.0.0.1:1"),
        backend=None,  # type: ignore[arg-type]  # the scorer never calls it
        circuit=Circuit(3, 10),
    )
    if loaded is not None:
        m.residency.update({n: Loaded(n, 1, None) for n in loaded})
    m.in_flight = in_flight
    return m


def test_a_backend_with_the_model_loaded_is_preferred() -> None:
    cold, warm = member("cold", []), member("warm", ["m"], in_flight=3)
    assert scorer.choose("m", [cold, warm], None, 2, 4, 0).member is warm


def test_a_loaded_backend_gives_way_beyond_the_cold_slack() -> None:
    cold, warm = member("cold", []), member("warm", ["m"], in_flight=5)
    choice = scorer.choose("m", [cold, warm], None, 2, 4, 0)
    assert choice.member is cold and choice.reason == "cold"


def test_a_model_being_loaded_draws_the_next_requests() -> None:
    a, b = member("a", []), member("b", [])
    a.residency.loading.add("m")
    choice = scorer.choose("m", [a, b], None, 2, 4, 0)
    assert choice.member is a and choice.reason == "loading"


def test_a_cold_load_avoids_evicting_a_busy_model() -> None:
    busy, idle = member("busy", ["x"]), member("idle", ["y"])
    busy.residency.started("x")
    assert scorer.choose("m", [busy, idle], None, 2, 4, 0).member is idle
    empty = member("empty", [])
    assert scorer.choose("m", [idle, empty], None, 2, 4, 0).member is empty


def test_a_conversation_goes_to_its_rendezvous_home_then_to_where_its_prefix_is() -> None:
    a, b = member("a"), member("b")
    system = "Long shared instructions. " * 100
    prompt = prompt_of("m", conversation(system, "my question"))
    assert prompt is not None
    home = scorer.choose("m", [a, b], prompt, 2, 4, 0)
    assert home.reason == "home" and not home.hit
    away = b if home.member is a else a
    away.prefixes.add(prompt)  # its earlier turns went there while the home was busy
    moved = scorer.choose("m", [a, b], prompt, 2, 4, 0)
    assert moved.member is away and moved.reason == "prefix" and moved.hit


def test_the_home_gives_way_when_busier_than_the_affinity_slack() -> None:
    a, b = member("a"), member("b")
    prompt = prompt_of("m", conversation("s", "q"))
    assert prompt is not None
    home = scorer.choose("m", [a, b], prompt, 2, 4, 0).member
    home.in_flight = 3
    assert scorer.choose("m", [a, b], prompt, 2, 4, 0).member is not home


def homed_on(name: str, names: tuple[str, ...] = ("one", "two")) -> list[dict[str, str]]:
    """A conversation, with a system prompt of a few blocks, whose home is ``name``."""
    for n in range(100):
        talk = conversation(f"Instructions {n}. " + "Be brief. " * 80, "first question")
        prompt = prompt_of(MODEL, talk)
        assert prompt is not None
        if rendezvous(prompt.conversation, list(names))[0] == name:
            return talk
    raise AssertionError(f"no conversation has its home on {name}")


# ---- end to end: Córtex in front of servers that load and evict ---------------------------


@pytest.fixture
def second() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def names(fake: FakeOllama, second: FakeOllama) -> dict[str, FakeOllama]:
    return {"one": fake, "two": second}


def backends(fake: FakeOllama, second: FakeOllama) -> list[dict[str, str]]:
    return [{"name": "one", "url": fake.url}, {"name": "two", "url": second.url}]


def test_requests_go_where_the_model_is_loaded(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    second.memory.preload(MODEL)
    gateway = start_gateway(backends=backends(fake, second))
    for n in range(6):
        answer = chat(gateway, [{"role": "user", "content": f"question {n}"}])
        assert answer.status_code == 200 and answer.headers["x-cortex-backend"] == "two"
    assert served(fake) == 0 and fake.memory.loads == 0


def test_concurrent_first_requests_for_a_cold_model_share_one_load(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.memory.load_delay = second.memory.load_delay = 0.6
    gateway = start_gateway(backends=backends(fake, second))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda n: chat(gateway, [{"role": "user", "content": f"q{n}"}]), range(4))
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.headers["x-cortex-backend"] for a in answers}) == 1
    assert fake.memory.loads + second.memory.loads == 1


def test_a_cold_model_goes_where_loading_it_evicts_no_busy_model(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL, "other:latest"]
    fake.memory.room = second.memory.room = 1
    fake.memory.preload("other:latest")
    fake.scripts["other:latest"] = Script(count=60, delay=0.05)
    gateway = start_gateway(backends=backends(fake, second), health_interval=0.2)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        long_answer = pool.submit(chat, gateway, [{"role": "user", "content": "long"}], "other")
        assert fake.wait_requests(1)
        answer = chat(gateway, [{"role": "user", "content": "hi"}])
        assert answer.headers["x-cortex-backend"] == "two"
        assert long_answer.result().status_code == 200
    assert fake.memory.evictions == 0


def test_backends_show_their_models_in_memory(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.memory.preload(MODEL)
    gateway = start_gateway(backends=backends(fake, second))
    assert chat(gateway, [{"role": "user", "content": "hi"}]).status_code == 200
    status = {b["name"]: b for b in httpx.get(gateway.url + "/cortex/backends").json()["backends"]}
    shown = status["one"]["loaded_models"]
    assert [m["name"] for m in shown] == [MODEL] and shown[0]["size_vram"] > 0
    assert status["two"]["loaded_models"] == []
    assert status["one"]["prefix_blocks"] > 0


def test_two_instances_send_a_conversation_to_the_same_backend(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.memory.preload(MODEL)
    second.memory.preload(MODEL)
    gateways = [start_gateway(backends=backends(fake, second)) for _ in range(2)]
    homes = set()
    for n in range(8):
        talk = [{"role": "system", "content": "shared"}, {"role": "user", "content": f"c{n}"}]
        seen = set()
        for turn in range(4):  # alternate instances, as a round-robin balancer would
            answer = chat(gateways[turn % 2], talk)
            seen.add(answer.headers["x-cortex-backend"])
            talk += [
                {"role": "assistant", "content": f"answer {turn}"},
                {"role": "user", "content": f"more {turn}"},
            ]
        assert len(seen) == 1, f"conversation {n} went to {seen}"
        homes |= seen
    assert homes == {"one", "two"}, "conversations still spread over both backends"


def test_residency_is_read_again_after_an_answer(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    gateway = start_gateway(backends=backends(fake, second), health_interval=60)
    first = chat(gateway, [{"role": "user", "content": "hi"}])
    host = names(fake, second)[first.headers["x-cortex-backend"]]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = httpx.get(gateway.url + "/cortex/backends").json()["backends"]
        shown = next(b for b in status if b["name"] == first.headers["x-cortex-backend"])
        if shown["loaded_models"] and shown["loaded_models"][0]["size_vram"] > 0:
            break
        time.sleep(0.05)
    assert [m["name"] for m in shown["loaded_models"]] == host.running() == [MODEL]
    assert shown["loaded_models"][0]["expires_at"] > time.time()
    assert go_time()  # the fake's clock format is what parse_ps reads


# ---- engine load signals -------------------------------------------------------------------

VLLM_METRICS = b"""# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.625
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.2e+06
"""

LLAMA_METRICS = b"""# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
llamacpp:requests_deferred 1
llamacpp:kv_cache_usage_ratio 0.25
"""


def test_vllm_and_llama_cpp_metrics_are_read() -> None:
    vllm = from_metrics(VLLM_METRICS)
    assert vllm == EngineLoad(3, 4, 0.625, "metrics") and vllm.busy == 7
    assert from_metrics(LLAMA_METRICS) == EngineLoad(2, 1, 0.25, "metrics")
    assert from_metrics(b"# nothing here\nprocess_cpu_seconds_total 3\n") is None
    assert from_metrics(b'vllm:num_requests_running{a="x y"} oops\n') is None


def test_llama_cpp_slots_are_read() -> None:
    slots = b'[{"id": 0, "is_processing": true}, {"id": 1, "is_processing": false}]'
    assert from_slots(slots) == EngineLoad(1, 0, None, "slots")
    assert from_slots(b'{"error": "slots endpoint disabled"}') is None


def test_an_engine_busy_with_other_clients_gets_fewer_requests(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = second.models = [MODEL]
    fake.engine_metrics = VLLM_METRICS  # 7 requests running or waiting, none of them ours
    second.slots = b'[{"id": 0, "is_processing": false}]'
    gateway = start_gateway(
        backends=[
            {"name": "one", "url": "openai+" + fake.url},
            {"name": "two", "url": "openai+" + second.url},
        ]
    )
    url = gateway.url + "/v1/chat/completions"
    for n in range(4):
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"question {n}"}]}
        answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 200 and answer.headers["x-cortex-backend"] == "two"
    status = {b["name"]: b for b in httpx.get(gateway.url + "/cortex/backends").json()["backends"]}
    assert status["one"]["engine"] == {
        "running": 3,
        "waiting": 4,
        "kv_cache": 0.625,
        "source": "metrics",
    }
    assert status["two"]["engine"]["source"] == "slots"
    assert [r.path for r in fake.requests if r.path in ("/metrics", "/slots")][:1] == ["/metrics"]


def test_an_engines_load_is_read_again_after_an_answer(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    """From its /metrics, as on the health check: an OpenAI-compatible server has no /api/ps."""
    fake.models = second.models = [MODEL]
    fake.engine_metrics = second.engine_metrics = LLAMA_METRICS  # 2 running, 1 deferred
    gateway = start_gateway(
        backends=[
            {"name": "one", "url": "openai+" + fake.url},
            {"name": "two", "url": "openai+" + second.url},
        ],
        health_interval=3600,  # only the first check: any later reading follows the answer
    )

    def engines() -> dict[str, object]:
        backends = httpx.get(gateway.url + "/cortex/backends").json()["backends"]
        return {b["name"]: b["engine"] for b in backends}

    deadline = time.monotonic() + 5
    while None in engines().values():
        assert time.monotonic() < deadline, "the engines' load was never read"
        time.sleep(0.02)
    fake.engine_metrics = second.engine_metrics = b"llamacpp:requests_processing 0\n"
    answer = chat(gateway, [{"role": "user", "content": "hello"}])
    assert answer.status_code == 200, answer.text
    served_by = answer.headers["x-cortex-backend"]
    idle = {"running": 0, "waiting": 0, "kv_cache": None, "source": "metrics"}
    while engines()[served_by] != idle:
        assert time.monotonic() < deadline + 5, engines()
        time.sleep(0.02)
    assert not [r.path for r in fake.requests + second.requests if r.path.endswith("/api/ps")]


def test_a_cold_model_has_its_load_time_on_top_of_the_first_byte_budget(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = [MODEL]
    fake.memory.load_delay = 1.2
    gateway = start_gateway(
        backends=[{"name": "one", "url": fake.url}], first_byte_timeout=0.8, load_timeout=2
    )
    deadline = time.monotonic() + 5
    while (
        httpx.get(gateway.url + "/cortex/backends").json()["backends"][0]["loaded_models"] is None
    ):
        assert time.monotonic() < deadline, "residency never read"
        time.sleep(0.02)
    cold = chat(gateway, [{"role": "user", "content": "first"}])
    assert cold.status_code == 200, cold.text
    fake.script = Script(header_delay=1.2)  # now warm: the plain budget applies
    warm = chat(gateway, [{"role": "user", "content": "second"}])
    assert warm.status_code == 504
    assert "did not answer within 0.8 s" in warm.json()["error"]


# ---- SSE clients while a model loads -----------------------------------------------------


def stream_sse(gateway_url: str, accept: str = "text/event-stream") -> tuple[int, bytes]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hola"}]}
    with httpx.stream(
        "POST", gateway_url + "/api/chat", json=body, headers={"Accept": accept}, timeout=30
    ) as response:
        return response.status_code, b"".join(response.iter_raw())


def test_sse_clients_get_heartbeats_while_a_model_loads(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = [MODEL]
    fake.memory.load_delay = 1.0
    fake.script = Script(tokens=["Había", " una", " vez"])
    gateway = start_gateway(heartbeat_interval=0.3)
    status, raw = stream_sse(gateway.url)
    assert status == 200
    assert raw.startswith(b": ping\n\n: ping\n\n"), raw[:60]
    events = [e for e in raw.split(b"\n\n") if e.startswith(b"data: ")]
    assert len(events) == 4 and b'"done":true' in events[-1]
    fake.memory.clear()
    status, raw = stream_sse(gateway.url, accept="application/x-ndjson")
    assert status == 200 and b"ping" not in raw, "NDJSON has no comments to send"


def test_a_failure_after_heartbeats_is_an_in_band_sse_error(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = [MODEL]
    fake.script = Script(header_delay=1.0, fault="status", status=500)
    gateway = start_gateway(heartbeat_interval=0.3)
    status, raw = stream_sse(gateway.url)
    assert status == 200 and raw.startswith(b": ping\n\n")
    assert raw.endswith(b"\n\n") and b'event: error\ndata: {"error":' in raw
    assert b'"done":true' not in raw


# ---- the queue -------------------------------------------------------------------------------


@pytest.mark.parametrize(("routing", "expected"), [("state", "two"), ("least-outstanding", "one")])
def test_a_waiter_is_placed_by_the_rule_when_several_backends_free_up(
    routing: str, expected: str, fake: FakeOllama, second: FakeOllama
) -> None:
    fake.models = second.models = [MODEL]
    fake.memory.preload(MODEL)
    second.memory.preload(MODEL)
    limited = [{**b, "max_concurrent": 1} for b in backends(fake, second)]
    settings = Settings(
        backends=limited, routing=routing, circuit_failures=1, circuit_cooldown=0.05
    )

    async def scenario() -> str:
        gateway = await Gateway.start(settings)
        router = gateway.router
        await asyncio.sleep(0.3)  # the health loop's first check, done before any fault
        try:
            talk = homed_on("two")
            (await router.acquire(MODEL, talk)).release()  # its first turn, on "two"
            hold = await router.acquire(MODEL, homed_on("one"))
            assert hold.member.name == "one"
            fault = await router.acquire(MODEL, conversation("s", "q"))
            assert fault.member.name == "two"
            fault.failed(UpstreamUnreachable("refused"))  # opens two's circuit
            fault.release()
            waiting = asyncio.create_task(router.acquire(MODEL, [*talk, *talk[1:]]))
            await asyncio.sleep(0.1)  # queued; meanwhile two's circuit half-opens
            assert router.queued == 1
            hold.release()  # now both have room
            lease = await waiting
            lease.release()
            return lease.member.name
        finally:
            await gateway.close()

    assert asyncio.run(scenario()) == expected


def same_home(model: str, names: list[str]) -> str:
    """Another model whose cold load rendezvous hashing sends where ``model``'s goes."""
    home = rendezvous(model.encode(), names)[0]
    return next(
        other
        for other in (f"model-{i}" for i in range(100))
        if other != model and rendezvous(other.encode(), names)[0] == home
    )


def test_a_burst_of_two_cold_models_loads_them_on_two_servers() -> None:
    """/api/ps lags behind: the load Córtex just started on one server counts there at once,
    so a second cold model that would hash to the same server goes to the idle one instead
    of evicting the first."""
    one, two = member("one", []), member("two", [])
    other = same_home("a", ["one", "two"])
    first = scorer.choose("a", [one, two], None, 2, 4, 0)
    assert first.reason == "cold"
    first.member.residency.loading.add("a")
    second = scorer.choose(other, [one, two], None, 2, 4, 0)
    assert second.reason == "cold"
    assert second.member is not first.member


def test_a_model_with_open_streams_counts_as_in_memory_before_ps_says_so() -> None:
    one, two = member("one", []), member("two", [])
    home = rendezvous(b"m", ["one", "two"])[0]
    streaming = one if home == "one" else two
    streaming.residency.started(same_home("m", ["one", "two"]))
    assert scorer.choose("m", [one, two], None, 2, 4, 0).member is not streaming


def test_a_cold_burst_of_two_models_loads_each_on_its_own_server_with_no_eviction(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    """Both servers hold one model at a time and have none loaded; two first requests for two
    models come at once. /api/ps says nothing yet, so only the loads Córtex itself started
    can tell the second request that the first server is taken."""
    names = ["one", "two"]
    first = "burst-a:latest"
    home = rendezvous(first.encode(), names)[0]
    other = next(
        name
        for name in (f"burst-{i}:latest" for i in range(100))
        if name != first and rendezvous(name.encode(), names)[0] == home
    )
    for server in (fake, second):
        server.models = [first, other]
        server.memory.room = 1
        server.memory.load_delay = 0.3
    gateway = start_gateway(backends=backends(fake, second), health_interval=60)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = [
            pool.submit(chat, gateway, [{"role": "user", "content": "hi"}], model)
            for model in (first, other)
        ]
        served = [a.result() for a in answers]
    assert all(a.status_code == 200 for a in served)
    assert {a.headers["x-cortex-backend"] for a in served} == {"one", "two"}
    assert fake.memory.evictions == second.memory.evictions == 0
