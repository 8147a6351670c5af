"""What Ollama's and OpenAI's clients expect, where Córtex used to differ from the real servers."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama


def test_root_answers_tools_as_ollama_does_and_browsers_with_the_page(
    gateway: RunningGateway,
) -> None:
    probe = httpx.get(gateway.url + "/", timeout=5)
    assert probe.status_code == 200
    assert probe.headers["content-type"].startswith("text/plain")
    assert probe.text == "Ollama is running"
    browser = httpx.get(
        gateway.url + "/", headers={"Accept": "text/html,application/xhtml+xml"}, timeout=5
    )
    assert browser.headers["content-type"].startswith("text/html")
    assert "<html" in browser.text.lower()


@pytest.mark.parametrize("path", ["/api/version", "/api/tags", "/v1/models", "/health", "/"])
def test_every_get_route_answers_head(gateway: RunningGateway, path: str) -> None:
    got = httpx.get(gateway.url + path, timeout=5)
    head = httpx.head(gateway.url + path, timeout=5)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


def test_a_model_named_without_its_tag_is_latest(gateway: RunningGateway) -> None:
    bare = DEFAULT_MODEL.removesuffix(":latest")
    found = httpx.get(f"{gateway.url}/v1/models/{bare}", timeout=5)
    assert found.status_code == 200
    assert found.json()["id"] == DEFAULT_MODEL
    assert httpx.get(f"{gateway.url}/v1/models/{bare}:7b", timeout=5).status_code == 404


def test_model_lists_with_every_model_server_down_are_errors(
    start_gateway: StartGateway,
) -> None:
    gw = start_gateway(upstream="http://127.0.0.1:9", connect_timeout=1)
    tags = httpx.get(gw.url + "/api/tags", timeout=10)
    models = httpx.get(gw.url + "/v1/models", timeout=10)
    assert tags.status_code == models.status_code == 502
    assert "error" in tags.json()
    assert models.json()["error"]["type"] == "server_error"


def test_reasoning_effort_becomes_ollamas_think(gateway: RunningGateway, fake: FakeOllama) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="none", max_retries=0)
    for effort, think in [("high", "high"), ("none", False), ("minimal", "low")]:
        fake.reset()
        client.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[{"role": "user", "content": "hi"}],
            reasoning_effort=effort,  # type: ignore[arg-type]
        )
        sent = next(r for r in fake.requests if r.path == "/api/chat").json
        assert sent["think"] == think, effort
    client.close()


@pytest.mark.parametrize(
    "field",
    [
        {"stream": "yes"},
        {"temperature": "0.5"},
        {"max_tokens": "10"},
        {"model": 7},
        {"reasoning_effort": "extreme"},
    ],
)
def test_v1_types_are_as_strict_as_openais(
    gateway: RunningGateway, fake: FakeOllama, field: dict[str, object]
) -> None:
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}], **field}
    refused = httpx.post(
        gateway.url + "/v1/chat/completions", content=orjson.dumps(body), timeout=5
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert [r for r in fake.requests if r.method == "POST"] == []


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2, 3], [4, 5]]])
def test_token_array_embeddings_reach_openai_servers_and_are_refused_for_ollama(
    start_gateway: StartGateway, fake: FakeOllama, tokens: list[object]
) -> None:
    to_openai = start_gateway(upstream="openai+" + fake.url)
    client = openai.OpenAI(base_url=to_openai.url + "/v1", api_key="none", max_retries=0)
    answer = client.embeddings.create(model=DEFAULT_MODEL, input=tokens)  # type: ignore[arg-type]
    assert len(answer.data) == (2 if isinstance(tokens[0], list) else 1)
    sent = next(r for r in fake.requests if r.path == "/v1/embeddings").json
    assert sent["input"] == tokens
    client.close()
    fake.reset()
    to_ollama = start_gateway()
    refused = httpx.post(
        to_ollama.url + "/v1/embeddings", json={"model": DEFAULT_MODEL, "input": tokens}
    )
    assert refused.status_code == 400
    assert "token ids" in refused.json()["error"]["message"]
    assert [r for r in fake.requests if r.method == "POST"] == []


def test_models_of_openai_servers_have_distinct_stable_digests(
    start_gateway: StartGateway, fake: FakeOllama
) -> None:
    fake.models = [DEFAULT_MODEL, "qwen3:8b", "llava:latest"]
    gw = start_gateway(upstream="openai+" + fake.url)
    first = httpx.get(gw.url + "/api/tags", timeout=5).json()["models"]
    again = httpx.get(gw.url + "/api/tags", timeout=5).json()["models"]
    digests = [m["digest"] for m in first]
    assert len(set(digests)) == 3
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
    assert digests == [m["digest"] for m in again]


def test_show_is_the_ollama_servers_own_answer(gateway: RunningGateway, fake: FakeOllama) -> None:
    shown = httpx.post(gateway.url + "/api/show", json={"model": DEFAULT_MODEL}, timeout=5)
    direct = httpx.post(fake.url + "/api/show", json={"model": DEFAULT_MODEL}, timeout=5)
    assert shown.status_code == 200
    assert shown.content == direct.content
    missing = httpx.post(gateway.url + "/api/show", json={"model": "nope:1b"}, timeout=5)
    assert missing.status_code == 404


def test_show_for_an_openai_server_describes_its_catalogue_entry(
    start_gateway: StartGateway, fake: FakeOllama
) -> None:
    fake.models = [DEFAULT_MODEL, "qwen3:8b"]
    gw = start_gateway(upstream="openai+" + fake.url)
    shown = httpx.post(gw.url + "/api/show", json={"model": "qwen3:8b"}, timeout=5)
    assert shown.status_code == 200
    assert set(shown.json()) >= {"details", "capabilities", "model_info"}
    assert [r.path for r in fake.requests if r.path.endswith("show")] == []
    missing = httpx.post(gw.url + "/api/show", json={"model": "nope:1b"}, timeout=5)
    assert missing.status_code == 404
    assert "nope:1b" in missing.json()["error"]


def test_an_unknown_openai_path_is_not_called_a_missing_model(gateway: RunningGateway) -> None:
    for method, path in (("POST", "/v1/audio/speech"), ("GET", "/v1/nothing")):
        response = httpx.request(method, gateway.url + path, json={}, timeout=5)
        assert response.status_code == 404
        assert response.json()["error"]["code"] is None
    missing = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "nope:1b", "messages": [{"role": "user", "content": "hi"}]},
        timeout=5,
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "model_not_found")


def test_an_openai_chat_needs_at_least_one_message(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "m", "messages": []}, timeout=5
    )
    assert response.status_code == 400
    assert "messages" in response.json()["error"]["message"]
