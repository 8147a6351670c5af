"""What reaches the upstream when the client's dialect differs from the upstream's."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def to_openai(fake: FakeOllama, start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(upstream="openai+" + fake.url)


@pytest.fixture
def to_ollama(fake: FakeOllama, start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(upstream=fake.url)


def test_ollama_request_becomes_an_openai_request(
    fake: FakeOllama, to_openai: RunningGateway
) -> None:
    payload = {
        "model": DEFAULT_MODEL,
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "What is this?", "images": [PNG]},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Lima"}}}
                ],
            },
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ],
        "format": {"type": "object", "properties": {"a": {"type": "string"}}},
        "options": {
            "temperature": 0.3,
            "top_k": 20,
            "num_predict": 50,
            "stop": ["END"],
            "num_ctx": 8192,
        },
        "tools": [WEATHER_TOOL],
        "keep_alive": "10m",
    }
    response = httpx.post(to_openai.url + "/api/chat", content=orjson.dumps(payload), timeout=10)
    assert response.status_code == 200
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    body = sent.json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.3
    assert body["top_k"] == 20
    assert body["max_tokens"] == 50
    assert body["stop"] == ["END"]
    assert "num_ctx" not in body and "keep_alive" not in body  # no equivalent: not sent
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == payload["format"]
    assert body["tools"] == [WEATHER_TOOL]
    user = body["messages"][1]
    assert user["content"][0] == {"type": "text", "text": "What is this?"}
    assert user["content"][1]["image_url"]["url"] == "data:image/png;base64," + PNG
    call = body["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Lima"}'}
    assert body["messages"][3] == {"role": "tool", "content": "sunny", "tool_call_id": call["id"]}


def test_ollama_tool_results_answer_the_calls_their_ids_name(
    fake: FakeOllama, to_openai: RunningGateway
) -> None:
    calls = [
        {"id": "call_A", "function": {"name": "get_weather", "arguments": {"city": "Lima"}}},
        {"id": "call_B", "function": {"name": "get_time", "arguments": {}}},
    ]
    messages = [
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "12:00", "tool_name": "get_time", "tool_call_id": "call_B"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_A"},
    ]
    payload = {"model": DEFAULT_MODEL, "messages": messages}
    response = httpx.post(to_openai.url + "/api/chat", content=orjson.dumps(payload), timeout=10)
    assert response.status_code == 200
    sent = fake.requests[-1].json["messages"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_A", "call_B"]
    assert [(m["tool_call_id"], m["content"]) for m in sent[2:]] == [
        ("call_B", "12:00"),
        ("call_A", "sunny"),
    ]


def test_openai_request_becomes_an_ollama_request(
    fake: FakeOllama, to_ollama: RunningGateway
) -> None:
    client = openai.OpenAI(base_url=to_ollama.url + "/v1", api_key="x", max_retries=0)
    client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[
            {"role": "developer", "content": "Be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        response_format={"type": "json_object"},
        max_tokens=40,
        temperature=0.5,
        seed=9,
        stop="END",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    client.close()
    sent = fake.requests[-1]
    assert sent.path == "/api/chat"
    body = sent.json
    assert body["format"] == "json"
    assert body["options"] == {"num_predict": 40, "temperature": 0.5, "seed": 9, "stop": ["END"]}
    assert body["tools"] == [WEATHER_TOOL]
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief"}
    assert messages[1] == {"role": "user", "content": "What is this?", "images": [PNG]}
    assert messages[2]["tool_calls"] == [
        {"id": "c1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Lima"}}}
    ]
    assert messages[3] == {
        "role": "tool",
        "content": "sunny",
        "tool_name": "get_weather",
        "tool_call_id": "c1",
    }


@pytest.mark.parametrize("upstream", ["ollama", "openai"])
def test_a_cut_off_answer_finishes_with_length(
    upstream: str, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream=("openai+" if upstream == "openai" else "") + fake.url)
    fake.script = Script(tokens=["a", "b", "c", "d", "e"])
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    completion = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    client.close()
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "ab"
    done = orjson.loads(
        httpx.post(
            gateway.url + "/api/chat",
            json={
                "model": DEFAULT_MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "options": {"num_predict": 2},
                "stream": False,
            },
        ).content
    )
    assert done["done_reason"] == "length"
    assert done["message"]["content"] == "ab"


def test_an_openai_data_url_is_required_for_images(to_ollama: RunningGateway) -> None:
    client = openai.OpenAI(base_url=to_ollama.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="data: URLs"):
        client.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                    ],
                }
            ],
        )
    client.close()


def test_upstream_api_key_is_sent_and_a_wrong_one_is_a_401(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.api_key = "sk-upstream"
    keyed = start_gateway(upstream="openai+" + fake.url, upstream_api_key="sk-upstream")
    client = openai.OpenAI(base_url=keyed.url + "/v1", api_key="client-key", max_retries=0)
    assert client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-upstream"
    wrong = start_gateway(upstream="openai+" + fake.url, upstream_api_key="sk-wrong")
    client_wrong = openai.OpenAI(base_url=wrong.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client_wrong.chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert "sk-wrong" not in str(caught.value)
    client.close()
    client_wrong.close()


def test_what_cannot_cross_dialects_is_refused_not_dropped(
    fake: FakeOllama, to_openai: RunningGateway, to_ollama: RunningGateway
) -> None:
    def generations() -> int:
        return sum(r.path.endswith(("/chat", "/generate", "/completions")) for r in fake.requests)

    before = generations()
    body = {"model": DEFAULT_MODEL, "prompt": "def f(", "suffix": "return 1"}
    response = httpx.post(to_openai.url + "/api/generate", json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert "suffix" in response.json()["error"]
    assert generations() == before  # no model server was asked


def test_log_probabilities_are_asked_for_across_dialects(
    fake: FakeOllama, to_openai: RunningGateway, to_ollama: RunningGateway
) -> None:
    hi = [{"role": "user", "content": "hi"}]
    body = {"model": DEFAULT_MODEL, "messages": hi, "logprobs": True, "top_logprobs": 2}
    assert httpx.post(to_ollama.url + "/v1/chat/completions", json=body).status_code == 200
    sent = fake.requests[-1].json
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    assert httpx.post(to_openai.url + "/api/chat", json=body).status_code == 200
    sent = fake.requests[-1].json
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)


def test_think_and_reasoning_effort_are_each_others_across_dialects(
    fake: FakeOllama, to_openai: RunningGateway, to_ollama: RunningGateway
) -> None:
    hi = [{"role": "user", "content": "hi"}]
    for effort, think in [("none", False), ("minimal", "low"), ("high", "high"), ("xhigh", "max")]:
        body = {"model": DEFAULT_MODEL, "messages": hi, "reasoning_effort": effort}
        assert httpx.post(to_ollama.url + "/v1/chat/completions", json=body).status_code == 200
        assert fake.requests[-1].json["think"] == think
    for think, sent in [
        ("medium", {"reasoning_effort": "medium"}),
        ("max", {"reasoning_effort": "high"}),
        (False, {"chat_template_kwargs": {"enable_thinking": False}}),
        (True, {}),
    ]:
        body = {"model": DEFAULT_MODEL, "messages": hi, "think": think, "stream": False}
        assert httpx.post(to_openai.url + "/api/chat", json=body).status_code == 200
        upstream = fake.requests[-1].json
        assert {k: upstream[k] for k in sent} == sent
        assert "reasoning_effort" in upstream or "reasoning_effort" not in sent
        assert upstream.get("reasoning_effort") != "none"  # vLLM refuses it


@pytest.mark.parametrize(
    ("keep_alive", "reason"), [(None, "load"), (0, "unload"), ("0s", "unload")]
)
def test_an_empty_chat_before_an_openai_server_loads_or_unloads_as_asked(
    keep_alive: object, reason: str, fake: FakeOllama, to_openai: RunningGateway
) -> None:
    body: dict[str, object] = {"model": DEFAULT_MODEL, "messages": []}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    answer = httpx.post(to_openai.url + "/api/chat", json=body, timeout=10).json()
    assert (answer["done"], answer["done_reason"]) == (True, reason)
