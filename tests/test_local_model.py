"""The embedded model, for real: Gemma 3 270M through llama.cpp, end to end."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import time
from typing import Any

import httpx
import ollama
import openai
import orjson
import pytest

from cortex.backends.local import BUNDLED_NAME, LocalBackend
from cortex.embedded import bindings
from tests.conftest import RunningGateway, StartGateway
from tests.helpers import read_until, stream_lines

pytestmark = pytest.mark.skipif(
    not bindings.installed(), reason="the embedded model needs the 'local' extra"
)

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


@pytest.fixture
def local(start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(upstream="local", first_byte_timeout=120, idle_timeout=60)


def backend_of(gateway: RunningGateway) -> LocalBackend:
    backend = gateway.server.config.app.state.gateway.router.members[0].backend  # type: ignore[attr-defined]
    assert isinstance(backend, LocalBackend)
    return backend


def test_embedded_model_is_listed_under_its_name(local: RunningGateway) -> None:
    assert [m["name"] for m in httpx.get(local.url + "/api/tags").json()["models"]] == [
        BUNDLED_NAME
    ]
    models = httpx.get(local.url + "/v1/models").json()["data"]
    assert [m["id"] for m in models] == [BUNDLED_NAME]


def test_real_tokens_stream_and_the_done_line_counts_them(local: RunningGateway) -> None:
    payload = {
        "messages": [{"role": "user", "content": "Escribe un cuento corto sobre un unicornio"}],
        "options": {"num_predict": 12, "seed": 1},
    }
    response, lines = stream_lines(local.url, payload)
    assert response.status_code == 200
    messages = [orjson.loads(line) for _, line in lines]
    pieces = [m["message"]["content"] for m in messages[:-1]]
    assert all(m["model"] == BUNDLED_NAME for m in messages)
    assert "".join(pieces).strip()
    done = messages[-1]
    assert done["done"] is True
    assert done["eval_count"] >= len(pieces)  # a piece may hold two tokens (held back)
    if done["done_reason"] == "length":
        assert done["eval_count"] == 12  # tokens, as the engine counts them
    assert done["prompt_eval_count"] > 10
    assert done["total_duration"] >= done["eval_duration"] > 0
    if len(lines) > 2:
        assert lines[-1][0] > lines[0][0]


def test_openai_client_streams_from_the_embedded_model(local: RunningGateway) -> None:
    client = openai.OpenAI(base_url=local.url + "/v1", api_key="none", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=BUNDLED_NAME,
            messages=[{"role": "user", "content": "Tell me a story about a pirate"}],
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.close()
    contents = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(contents).strip()
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens >= len(contents)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    assert finish in ("stop", "length")
    if finish == "length":
        assert chunks[-1].usage.completion_tokens == 10


def test_the_ollama_client_gets_whole_answers_from_the_embedded_model(
    local: RunningGateway,
) -> None:
    """The ``ollama`` SDK asks for whole answers (``stream: false``) unless told otherwise;
    the embedded model only streams, so the relay gathers its lines into one object."""
    client = ollama.Client(host=local.url)
    chat = client.chat(
        model=BUNDLED_NAME,
        messages=[{"role": "user", "content": "Say hi"}],
        options={"num_predict": 8, "seed": 1},
    )
    assert chat.done is True
    assert chat.done_reason in ("stop", "length")
    assert chat.message.role == "assistant"
    assert chat.message.content.strip()
    assert chat.eval_count and chat.eval_count <= 8
    assert chat.prompt_eval_count and chat.prompt_eval_count > 1
    generated = client.generate(
        model=BUNDLED_NAME, prompt=COUNTING, raw=True, options={"num_predict": 6, "temperature": 0}
    )
    assert generated.done is True
    assert generated.response.strip()
    assert generated.eval_count == 6
    assert generated.done_reason == "length"


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_a_request_that_only_loads_or_unloads_the_embedded_model_is_answered(
    local: RunningGateway, path: str
) -> None:
    backend = backend_of(local)
    before = backend.tokens_generated
    loaded = httpx.post(local.url + path, json={"model": BUNDLED_NAME}, timeout=30)
    unloaded = httpx.post(local.url + path, json={"model": BUNDLED_NAME, "keep_alive": 0})
    assert (loaded.status_code, unloaded.status_code) == (200, 200)
    assert loaded.json()["done_reason"] == "load"
    assert unloaded.json()["done_reason"] == "unload"
    assert loaded.json()["done"] is True
    assert backend.tokens_generated == before  # nothing was generated for them


TOO_LONG = "word " * 4000  # some 4,000 tokens: twice the test model's context


@pytest.mark.parametrize(
    ("path", "body", "error_of"),
    [
        ("/api/chat", {"messages": [{"role": "user", "content": TOO_LONG}]}, lambda b: b["error"]),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": TOO_LONG}], "stream": True},
            lambda b: b["error"],
        ),
        (
            "/v1/messages",
            {"max_tokens": 8, "messages": [{"role": "user", "content": TOO_LONG}], "stream": True},
            lambda b: b["error"],
        ),
        ("/v1/responses", {"input": TOO_LONG}, lambda b: b["error"]),
    ],
    ids=["ollama", "openai", "anthropic", "responses"],
)
def test_a_prompt_longer_than_the_context_is_the_clients_400_in_its_dialect(
    local: RunningGateway, path: str, body: dict[str, Any], error_of: Any
) -> None:
    """Not a 502 nor an error in a 200 stream: agents retry a server error (Codex five
    times) but not a prompt that is too long, and a 4xx leaves the backend's circuit be."""
    response = httpx.post(local.url + path, json={"model": BUNDLED_NAME, **body}, timeout=60)
    assert response.status_code == 400
    error = error_of(response.json())
    message = error if isinstance(error, str) else error["message"]
    assert "2048" in message and "CORTEX_LOCAL_CONTEXT" in message
    if path in ("/v1/chat/completions", "/v1/responses"):
        assert (error["type"], error["code"]) == (
            "invalid_request_error",
            "context_length_exceeded",
        )
    if path == "/v1/messages":
        assert error["type"] == "invalid_request_error"
    status = httpx.get(local.url + "/cortex/backends").json()["backends"][0]
    assert (status["circuit"], status["failures"]) == ("closed", 0)
    answer = httpx.post(  # and the model serves the next request
        local.url + "/api/generate",
        json={"model": BUNDLED_NAME, "prompt": "Hola", "options": {"num_predict": 2}},
        timeout=60,
    )
    assert answer.status_code == 200


def test_embeddings_from_the_embedded_model_are_the_clients_400_in_its_dialect(
    local: RunningGateway,
) -> None:
    ollama_style = httpx.post(local.url + "/api/embed", json={"model": BUNDLED_NAME, "input": "hi"})
    assert ollama_style.status_code == 400
    assert ollama_style.json() == {"error": f'"{BUNDLED_NAME}" does not support embeddings'}
    openai_style = httpx.post(
        local.url + "/v1/embeddings", json={"model": BUNDLED_NAME, "input": "hi"}
    )
    assert openai_style.status_code == 400
    assert openai_style.json()["error"]["type"] == "invalid_request_error"
    assert "embeddings" in openai_style.json()["error"]["message"]


def test_a_client_that_leaves_stops_the_generation(local: RunningGateway) -> None:
    backend = backend_of(local)
    payload = {"prompt": COUNTING, "raw": True, "options": {"num_predict": 400, "temperature": 0}}
    body = orjson.dumps({"model": BUNDLED_NAME, **payload})
    with httpx.Client(timeout=60) as warm:
        warm.post(
            local.url + "/api/generate",
            content=orjson.dumps({**payload, "options": {"num_predict": 1}}),
        )
    sock = socket.create_connection((local.host, local.port))
    sock.sendall(
        b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    read_until(sock, b'"response"')
    assert backend.busy, "the model finished before the client left; the test proves nothing"
    sock.close()
    deadline = time.monotonic() + 5
    while backend.busy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not backend.busy, "the model kept generating for a client that left"
    generated = backend.tokens_generated
    time.sleep(0.3)
    assert backend.tokens_generated == generated
    assert generated < 400


def test_the_gateway_answers_while_the_model_generates(local: RunningGateway) -> None:
    payload = {"prompt": COUNTING, "raw": True, "options": {"num_predict": 60, "temperature": 0}}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = [
            pool.submit(httpx.post, local.url + "/api/generate", json=payload, timeout=120)
            for _ in range(2)
        ]
        time.sleep(0.3)
        assert httpx.get(local.url + "/health", timeout=2).status_code == 200
        results = [a.result() for a in answers]
    for result in results:
        assert result.status_code == 200
        lines = [orjson.loads(line) for line in result.content.splitlines()]
        assert lines[-1]["done"] is True


def test_unknown_model_on_the_embedded_backend_is_a_404(local: RunningGateway) -> None:
    response = httpx.post(
        local.url + "/api/chat",
        json={"model": "llama3:70b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 404
    assert BUNDLED_NAME in response.json()["error"]


def test_the_model_runs_on_the_binding_chosen_for_this_machine(local: RunningGateway) -> None:
    expected = bindings.choose(
        os.environ.get("CORTEX_LLAMA"), bindings.installed(), bindings.cpu_flags()
    )
    assert backend_of(local).process.system_info.endswith(f"({expected} binding)")
