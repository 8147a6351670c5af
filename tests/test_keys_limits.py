"""API keys and per-key limits, end to end, against the in-memory store and a real Redis.

The official `openai` and `ollama` clients see the errors they expect (401, 403, 429 with
Retry-After); two Córtex instances sharing one Redis enforce one combined limit; Redis going
away mid-test is handled as configured; usage matches the traffic; keys never leak.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from cortex.access import limits
from cortex.access.keys import generate_key, hash_key
from cortex.access.limits_redis import RedisLimitStore, connect
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.redis_server import RedisServer, running_redis

KEY = generate_key()
OTHER = generate_key()
WRONG = generate_key()
HI = [{"role": "user", "content": "hola"}]
TOKENS_PER_ANSWER = 26 + 3  # the fake's prompt_eval_count and its three default tokens


def entry(name: str = "ci", key: str = KEY, **limits: Any) -> dict[str, Any]:
    return {"name": name, "key_hash": hash_key(key), **limits}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(
    gw: RunningGateway,
    path: str = "/api/chat",
    key: str | None = KEY,
    model: str = DEFAULT_MODEL,
    **payload: Any,
) -> httpx.Response:
    body = {"model": model, "messages": HI, "stream": False, **payload}
    headers = bearer(key) if key else {}
    return httpx.post(gw.url + path, content=orjson.dumps(body), headers=headers, timeout=15)


def usage_of(gw: RunningGateway, key: str = KEY) -> dict[str, Any]:
    answer = httpx.get(gw.url + "/cortex/usage", headers=bearer(key), timeout=5)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def usage_after(gw: RunningGateway, requests: int, key: str = KEY) -> dict[str, Any]:
    """``/cortex/usage`` once it counts ``requests`` requests in all: a client can have the
    whole answer a moment before the gateway has counted it."""
    deadline = time.monotonic() + 5
    while True:
        usage = usage_of(gw, key)
        if sum(r["requests"] for r in usage["usage"]) >= requests or time.monotonic() > deadline:
            return usage
        time.sleep(0.02)


def soon(check: Callable[[], bool]) -> bool:
    """True once ``check`` is: a client can have the whole answer a moment before the
    gateway has freed its slot."""
    deadline = time.monotonic() + 5
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def rows(usage: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    return {
        (r["key"], r["model"]): (
            r["requests"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["errors"],
        )
        for r in usage["usage"]
    }


def openai_client(gw: RunningGateway, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """Each limit test runs on both stores: None is the in-memory one."""
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


# Who may call


def test_keys_are_off_until_some_exist(gateway: RunningGateway) -> None:
    assert post(gateway, key=None).status_code == 200
    assert httpx.get(gateway.url + "/cortex/usage").json() == {"usage": [], "tokens_today": {}}


def test_missing_or_wrong_key_is_a_401_in_the_dialect_of_the_path(
    start_gateway: StartGateway,
) -> None:
    gw = start_gateway(keys=[entry()])
    missing = post(gw, key=None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="cortex"'
    assert missing.json() == {
        "error": "missing API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    }
    assert post(gw, key=WRONG).json() == {"error": "invalid API key"}
    assert post(gw, "/v1/chat/completions", key=WRONG).json() == {
        "error": {
            "message": "invalid API key",
            "type": "authentication_error",
            "param": None,
            "code": None,
        }
    }
    assert httpx.get(gw.url + "/api/tags").status_code == 401  # through FastAPI's middleware
    assert httpx.get(gw.url + "/v1/models").json()["error"]["type"] == "authentication_error"
    assert httpx.post(gw.url + "/api/chat", headers={"Authorization": KEY}).status_code == 401
    # Right key, either header
    assert post(gw).status_code == 200
    by_header = httpx.post(
        gw.url + "/api/chat",
        content=orjson.dumps({"model": DEFAULT_MODEL, "messages": HI, "stream": False}),
        headers={"X-API-Key": KEY},
    )
    assert by_header.status_code == 200
    assert httpx.get(gw.url + "/api/tags", headers={"X-API-Key": KEY}).status_code == 200


def test_health_page_and_docs_stay_open_and_ops_paths_follow_the_setting(
    start_gateway: StartGateway,
) -> None:
    gw = start_gateway(keys=[entry()])
    for path in ("/health", "/ready", "/", "/static/app.js", "/docs", "/openapi.json"):
        assert httpx.get(gw.url + path).status_code == 200, path
    for path in ("/cortex/backends", "/cortex/usage", "/metrics"):
        assert httpx.get(gw.url + path).status_code == 401, path
        assert httpx.get(gw.url + path, headers=bearer(KEY)).status_code == 200, path
    relaxed = start_gateway(keys=[entry()], ops_require_key=False)
    for path in ("/cortex/backends", "/cortex/usage", "/metrics"):
        assert httpx.get(relaxed.url + path).status_code == 200, path
    assert post(relaxed, key=None).status_code == 401


def test_require_keys_refuses_everyone_when_there_are_none(start_gateway: StartGateway) -> None:
    gw = start_gateway(require_keys=True)
    assert post(gw, key=None).status_code == 401
    assert post(gw, key=WRONG).status_code == 401


def test_a_shared_store_requires_keys_even_when_it_has_none(
    redis_server: RedisServer, start_gateway: StartGateway
) -> None:
    """A Redis that lost its data (no persistence, a flush) must not open the gateway."""
    assert post(start_gateway(redis_url=redis_server.url), key=None).status_code == 401
    opened = start_gateway(redis_url=redis_server.url, require_keys=False)
    assert post(opened, key=None).status_code == 200


@pytest.mark.parametrize("upstream_kind", ["ollama", "openai"])
def test_official_clients_with_and_without_a_key(
    upstream_kind: str, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    prefix = "openai+" if upstream_kind == "openai" else ""
    gw = start_gateway(upstream=prefix + fake.url, keys=[entry()])
    with openai_client(gw, WRONG) as wrong, pytest.raises(openai.AuthenticationError) as denied:
        wrong.chat.completions.create(model=DEFAULT_MODEL, messages=HI)  # type: ignore[arg-type]
    assert denied.value.status_code == 401
    with openai_client(gw) as right:
        answer = right.chat.completions.create(model=DEFAULT_MODEL, messages=HI)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Había una vez"

    with ollama.Client(host=gw.url) as anonymous, pytest.raises(ollama.ResponseError) as refused:
        anonymous.chat(model=DEFAULT_MODEL, messages=HI)
    assert refused.value.status_code == 401
    assert "missing API key" in refused.value.error
    with ollama.Client(host=gw.url, headers=bearer(KEY)) as keyed:
        pieces = [part.message.content for part in keyed.chat(DEFAULT_MODEL, HI, stream=True)]
    assert "".join(p or "" for p in pieces) == "Había una vez"


# Limits


def test_requests_per_minute_429_in_both_dialects(
    redis_url: str | None, start_gateway: StartGateway
) -> None:
    gw = start_gateway(redis_url=redis_url, keys=[entry(rpm=3), entry("web", OTHER, admin=True)])
    with openai_client(gw) as client:
        for _ in range(3):
            client.chat.completions.create(model=DEFAULT_MODEL, messages=HI)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model=DEFAULT_MODEL, messages=HI)  # type: ignore[arg-type]
    error = limited.value
    assert error.status_code == 429
    assert isinstance(error.body, dict)
    assert error.body["message"] == "requests per minute limit of 3 reached for key 'ci'"
    assert error.body["type"] == "rate_limit_error"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    ollama_shape = post(gw)
    assert ollama_shape.status_code == 429
    assert ollama_shape.json() == {"error": "requests per minute limit of 3 reached for key 'ci'"}
    assert 1 <= int(ollama_shape.headers["retry-after"]) <= 60
    assert post(gw, key=OTHER).status_code == 200  # another key has its own count
    assert rows(usage_after(gw, 4, OTHER))[("ci", DEFAULT_MODEL)] == (3, 78, 9, 0)  # refusals: none


def test_two_instances_sharing_one_redis_enforce_one_limit(
    redis_server: RedisServer, start_gateway: StartGateway
) -> None:
    settings = {"redis_url": redis_server.url, "keys": [entry(rpm=10)]}
    both = [start_gateway(**settings), start_gateway(**settings)]
    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(lambda i: post(both[i % 2]).status_code, range(30)))
    assert sorted(statuses) == [200] * 10 + [429] * 20
    served = rows(usage_after(both[0], 10))[("ci", DEFAULT_MODEL)][0]
    assert served == 10
    assert rows(usage_of(both[1])) == rows(usage_of(both[0]))  # one shared table


def test_concurrency_limit_across_two_instances(
    redis_server: RedisServer, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(delay=0.4)
    settings = {"redis_url": redis_server.url, "keys": [entry(concurrent=2)]}
    both = [start_gateway(**settings), start_gateway(**settings)]
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: post(both[i % 2]).status_code, range(6)))
    assert sorted(statuses) == [200, 200, 429, 429, 429, 429]
    fake.script = Script()
    assert soon(lambda: post(both[0]).status_code == 200)  # the slots came back


def test_a_stream_holds_its_slot_until_it_ends(
    redis_url: str | None, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(count=6, delay=0.15)
    gw = start_gateway(redis_url=redis_url, keys=[entry(concurrent=1)])
    first_line = threading.Event()
    finished: list[int] = []

    def stream() -> None:
        body = orjson.dumps({"model": DEFAULT_MODEL, "messages": HI})
        with httpx.stream("POST", gw.url + "/api/chat", content=body, headers=bearer(KEY)) as r:
            for _ in r.iter_lines():
                first_line.set()
            finished.append(r.status_code)

    streaming = threading.Thread(target=stream)
    streaming.start()
    assert first_line.wait(5)
    busy = post(gw)
    assert busy.status_code == 429
    assert busy.json() == {"error": "concurrent streams limit of 1 reached for key 'ci'"}
    assert busy.headers["retry-after"] == "1"
    assert httpx.get(gw.url + "/api/tags", headers=bearer(KEY)).status_code == 200  # GETs hold none
    streaming.join(10)
    assert finished == [200]
    fake.script = Script()
    assert soon(lambda: post(gw).status_code == 200)


@pytest.mark.parametrize("client", ["ollama", "openai"])
def test_tokens_per_day_counted_from_the_upstreams_counts(
    client: str, redis_url: str | None, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    """Ollama's done line (eval_count + prompt_eval_count) through /api/chat; OpenAI's
    usage chunk through /v1 from an OpenAI-compatible upstream."""
    prefix = "openai+" if client == "openai" else ""
    gw = start_gateway(
        upstream=prefix + fake.url, redis_url=redis_url, keys=[entry(tokens_per_day=50)]
    )

    def ask() -> None:
        if client == "ollama":
            with ollama.Client(host=gw.url, headers=bearer(KEY)) as c:
                c.chat(DEFAULT_MODEL, HI)
            return
        with openai_client(gw) as c:
            stream = c.chat.completions.create(
                model=DEFAULT_MODEL,
                messages=HI,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            list(stream)

    ask()
    ask()  # 29 tokens used: still under 50, so this one runs and ends at 58
    usage_after(gw, 2)
    error = ollama.ResponseError if client == "ollama" else openai.RateLimitError
    with pytest.raises(error) as spent:
        ask()
    assert "tokens per day limit of 50 reached for key 'ci'" in str(spent.value)
    assert rows(usage_of(gw))[("ci", DEFAULT_MODEL)] == (2, 52, 6, 0)
    assert usage_of(gw)["tokens_today"] == {"ci": 2 * TOKENS_PER_ANSWER}
    refused = post(gw)
    assert 0 < int(refused.headers["retry-after"]) <= 86400  # until midnight UTC


def test_without_reported_counts_the_streamed_pieces_are_counted(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gw = start_gateway(upstream="openai+" + fake.url, keys=[entry()])
    with openai_client(gw) as client:
        list(client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True))  # type: ignore[arg-type]
    assert rows(usage_after(gw, 1))[("ci", DEFAULT_MODEL)] == (1, 0, 3, 0)


def test_allowed_models(fake: FakeOllama, start_gateway: StartGateway) -> None:
    fake.models = [DEFAULT_MODEL, "other:7b"]
    gw = start_gateway(keys=[entry(models=["fake-llama"])])  # names fake-llama:latest
    with openai_client(gw) as client:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HI)  # type: ignore[arg-type]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(model="other:7b", messages=HI)  # type: ignore[arg-type]
        assert isinstance(denied.value.body, dict)
        assert denied.value.body["message"] == "model 'other:7b' is not allowed for key 'ci'"
        with pytest.raises(openai.PermissionDeniedError):
            client.embeddings.create(model="other:7b", input="hola")
    with ollama.Client(host=gw.url, headers=bearer(KEY)) as c:
        with pytest.raises(ollama.ResponseError) as refused:
            c.chat("other:7b", HI)
        assert refused.value.status_code == 403
        c.chat("fake-llama", HI)
    assert len([r for r in fake.requests if r.path == "/api/chat"]) == 2  # refusals never left
    assert post(gw, model="made-up-1").status_code == 403
    assert post(gw, model="made-up-2").status_code == 403
    # A refused request counts toward nothing: the five 403s are not usage.
    assert rows(usage_after(gw, 2)) == {("ci", DEFAULT_MODEL): (1, 26, 3, 0),
                                  ("ci", "fake-llama"): (1, 26, 3, 0)}  # fmt: skip


def test_a_model_the_key_may_not_use_counts_toward_no_limit(
    redis_url: str | None, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    """The README's rule: a refused request counts toward nothing. A 403 comes after the
    request was admitted (its model is in its body), so it gives back what it took."""
    gw = start_gateway(
        redis_url=redis_url, keys=[entry(rpm=3, concurrent=1, models=["fake-llama"])]
    )
    assert [post(gw, model="other:7b").status_code for _ in range(3)] == [403, 403, 403]
    assert post(gw).status_code == 200  # neither the minute's 3 requests nor the one slot
    assert [post(gw).status_code for _ in range(3)] == [200, 200, 429]


# Redis going away


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_redis_stopped_mid_test(
    policy: str,
    redis_server: RedisServer,
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cortex")
    gw = start_gateway(
        redis_url=redis_server.url, limits_on_redis_failure=policy, keys=[entry(rpm=100)]
    )
    assert post(gw).status_code == 200
    redis_server.stop()
    answers = [post(gw, path) for path in ("/api/chat", "/v1/chat/completions", "/api/chat")]
    if policy == "open":
        assert [a.status_code for a in answers] == [200, 200, 200]
    else:
        assert [a.status_code for a in answers] == [503, 503, 503]
        assert answers[0].json() == {"error": "per-key limits cannot be checked right now"}
        assert answers[1].json()["error"]["type"] == "server_error"
        assert answers[0].headers["retry-after"] == "5"
    assert post(gw, key=WRONG).status_code == 401  # keys are still checked, from memory
    outage = [r for r in caplog.records if "is not answering" in r.getMessage()]
    assert len(outage) == 1
    message = outage[0].getMessage()
    assert redis_server.url in message and f"limits_on_redis_failure = {policy}" in message

    redis_server.start()  # empty again: a fresh server on the same port
    deadline = time.monotonic() + 5
    while not any("answers again" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "Córtex did not use Redis again"
        post(gw)
        time.sleep(0.1)
    assert post(gw).status_code == 200
    assert rows(usage_of(gw))[("ci", DEFAULT_MODEL)][0] >= 1  # counting in Redis again


def test_an_unreachable_redis_at_start_and_its_password_stay_out_of_the_logs(
    start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cortex")
    gw = start_gateway(redis_url="redis://:hunter2@127.0.0.1:1/0", keys=[entry()])
    assert post(gw).status_code == 200  # a configured key, limits open
    unknown = post(gw, key=WRONG)  # it might be in Redis: no way to tell yet
    assert unknown.status_code == 503
    assert unknown.json() == {"error": "API keys cannot be checked right now"}
    assert "redis://:***@127.0.0.1:1/0 is not answering" in caplog.text
    assert "hunter2" not in caplog.text
    assert httpx.get(gw.url + "/ready", timeout=10).status_code == 200  # its key works


def test_ready_says_so_while_no_key_can_be_checked(start_gateway: StartGateway) -> None:
    """A shared key store that has never answered and no key in the settings: every keyed
    request gets a 503, so a load balancer must not send any here."""
    gw = start_gateway(redis_url="redis://127.0.0.1:1/0")
    assert post(gw, key=WRONG).status_code == 503
    ready = httpx.get(gw.url + "/ready", timeout=10)
    assert ready.status_code == 503
    assert "key store has not answered" in ready.text
    assert httpx.get(gw.url + "/health", timeout=10).status_code == 200


def test_a_crashed_instances_slots_expire(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "LEASE_TTL", 0.3)

    async def scenario() -> None:
        store = RedisLimitStore(connect(redis_server.url))
        try:
            assert await store.admit("ci", 0, 0, 1, "crashed", "") is None
            refusal = await store.admit("ci", 0, 0, 1, "next", "")
            assert refusal is not None and refusal.limit == "concurrent"
            await asyncio.sleep(0.4)  # nobody renewed "crashed"
            assert await store.admit("ci", 0, 0, 1, "next", "") is None
            for _ in range(3):  # a live holder renews, and keeps its slot
                await asyncio.sleep(0.15)
                await store.renew({"ci": ["next"]}, 0.3)
            assert await store.admit("ci", 0, 0, 1, "third", "") is not None
            await store.release("ci", "next")
            assert await store.admit("ci", 0, 0, 1, "third", "") is None
        finally:
            await store.close()

    asyncio.run(scenario())


# Usage and secrecy


def test_usage_matches_the_traffic(
    redis_url: str | None, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gw = start_gateway(redis_url=redis_url, keys=[entry(admin=True), entry("web", OTHER)])
    assert post(gw, stream=True).status_code == 200
    assert post(gw, "/api/generate", prompt="hola").status_code == 200
    assert post(gw, "/v1/chat/completions").status_code == 200
    fake.script = Script(fault="status", status=500)
    assert post(gw).status_code == 500
    fake.script = Script(fault="reset_mid", fault_after=1)
    assert post(gw, stream=True).status_code == 200  # the error arrives in band
    fake.script = Script()
    assert post(gw, key=OTHER, model="fake-llama").status_code == 200
    assert httpx.get(gw.url + "/api/tags", headers=bearer(OTHER)).status_code == 200
    table = rows(usage_after(gw, 7))
    assert table == {
        ("ci", DEFAULT_MODEL): (5, 3 * 26, 3 * 3 + 1, 2),
        ("web", "fake-llama"): (1, 26, 3, 0),
        ("web", "-"): (1, 0, 0, 0),  # a request that names no model
    }
    assert usage_of(gw)["tokens_today"] == {"ci": 3 * 29 + 1, "web": 29}


@pytest.mark.parametrize("upstream_kind", ["ollama", "openai"])
def test_embeddings_count_their_input_tokens(
    upstream_kind: str, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    prefix = "openai+" if upstream_kind == "openai" else ""
    gw = start_gateway(upstream=prefix + fake.url, keys=[entry()])
    texts = ["uno dos tres", "cuatro cinco"]  # the fake counts 3 + 2 tokens
    for path, body in (
        ("/api/embed", {"model": DEFAULT_MODEL, "input": texts}),
        ("/v1/embeddings", {"model": DEFAULT_MODEL, "input": texts}),
        ("/api/embeddings", {"model": DEFAULT_MODEL, "prompt": "seis siete"}),  # reports none
    ):
        answer = httpx.post(gw.url + path, json=body, headers=bearer(KEY), timeout=10)
        assert answer.status_code == 200, answer.text
    assert rows(usage_after(gw, 3)) == {("ci", DEFAULT_MODEL): (3, 2 * 5, 0, 0)}
    assert usage_of(gw)["tokens_today"] == {"ci": 10}


def test_a_key_sees_only_its_own_usage_unless_admin(
    redis_url: str | None, start_gateway: StartGateway
) -> None:
    boss = generate_key()
    gw = start_gateway(
        redis_url=redis_url, keys=[entry(), entry("web", OTHER), entry("boss", boss, admin=True)]
    )
    assert post(gw).status_code == 200
    assert post(gw, key=OTHER).status_code == 200
    assert set(rows(usage_after(gw, 1))) == {("ci", DEFAULT_MODEL)}
    assert set(usage_of(gw)["tokens_today"]) == {"ci"}
    assert set(rows(usage_after(gw, 1, key=OTHER))) == {("web", DEFAULT_MODEL)}
    everyone = usage_after(gw, 2, key=boss)
    assert set(rows(everyone)) == {("ci", DEFAULT_MODEL), ("web", DEFAULT_MODEL)}
    assert set(everyone["tokens_today"]) == {"ci", "web"}


def test_an_answer_the_client_left_still_counts(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(count=20, delay=0.05)
    gw = start_gateway(keys=[entry()])
    body = orjson.dumps({"model": DEFAULT_MODEL, "messages": HI})
    with httpx.stream("POST", gw.url + "/api/chat", content=body, headers=bearer(KEY)) as r:
        lines = r.iter_lines()
        next(lines), next(lines)  # then hang up
    assert fake.wait_disconnect(timeout=5)
    (requests, prompt, completion, errors) = rows(usage_after(gw, 1))[("ci", DEFAULT_MODEL)]
    assert (requests, prompt, errors) == (1, 0, 0)  # leaving is not an error
    assert 2 <= completion < 20  # the pieces relayed before Córtex noticed


def test_keys_never_reach_logs_or_answers(
    start_gateway: StartGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = start_gateway(keys=[entry(rpm=2)])
    answers = [
        post(gw),
        post(gw, "/v1/chat/completions"),
        post(gw),  # 429
        post(gw, key=WRONG),
        post(gw, "/v1/chat/completions", key=WRONG),
        httpx.get(gw.url + "/api/tags", headers={"X-API-Key": WRONG}),
        httpx.get(gw.url + "/cortex/usage", headers={"X-API-Key": KEY}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 429, 401, 401, 401, 200]
    for secret in (KEY, WRONG, hash_key(KEY), KEY[4:]):
        assert secret not in caplog.text
        for answer in answers:
            assert secret not in answer.text
            assert all(secret not in value for value in answer.headers.values())
    assert "key=ci" in caplog.text  # the access log names the key, not the secret
