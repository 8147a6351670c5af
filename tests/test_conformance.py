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
