"""OpenAI's legacy text completions (``/v1/completions``), with fill-in-the-middle: relayed
to an OpenAI-compatible server, translated to Ollama's ``/api/generate`` for Ollama."""

from __future__ import annotations

import httpx
import openai

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script

TOKENS = ["    return", " a", " +", " b"]


def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)


def test_fill_in_the_middle_goes_to_ollamas_generate_with_its_suffix(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS)
    stream = client(gateway).completions.create(
        model=DEFAULT_MODEL,
        prompt="def add(a, b):\n",
        suffix="\n\nprint(add(1, 2))",
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "".join(TOKENS)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(TOKENS)
    sent = fake.requests[-1]
    assert sent.path == "/api/generate"
    assert sent.json["prompt"] == "def add(a, b):\n"
    assert sent.json["suffix"] == "\n\nprint(add(1, 2))"
    assert "raw" not in sent.json  # the model's template fills in the middle
    assert sent.json["options"]["num_predict"] == 20


def test_a_plain_completion_is_a_raw_prompt_and_can_be_whole(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS)
    answer = client(gateway).completions.create(model=DEFAULT_MODEL, prompt="def add(a, b):\n")
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "".join(TOKENS)
    assert fake.requests[-1].json["raw"] is True


def test_an_openai_server_gets_the_completion_as_it_was_sent(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream="openai+" + fake.url)
    fake.script = Script(tokens=TOKENS)
    body = {"model": DEFAULT_MODEL, "prompt": "x", "suffix": "y", "stream": True}
    answer = httpx.post(gateway.url + "/v1/completions", json=body, timeout=10)
    assert answer.status_code == 200
    assert fake.requests[-1].path == "/v1/completions"
    assert fake.requests[-1].json == body


def test_what_a_translated_completion_cannot_carry_is_a_400(gateway: RunningGateway) -> None:
    for field, value in (("echo", True), ("n", 2), ("logprobs", 2)):
        body = {"model": DEFAULT_MODEL, "prompt": "x", field: value}
        answer = httpx.post(gateway.url + "/v1/completions", json=body, timeout=10)
        assert answer.status_code == 400, field
        assert field in answer.json()["error"]["message"]
