"""Anthropic's Messages API through Córtex, with the official ``anthropic`` SDK over real
sockets: translated for an Ollama or OpenAI-compatible server, relayed as it is to a server
that speaks Messages, and the reverse (Ollama and OpenAI clients in front of one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import post_chat

anthropic = pytest.importorskip("anthropic")

HI = [{"role": "user", "content": "Cuenta una historia sobre piratas"}]
TOKENS = ["Había", " una", " vez", " 🏴‍☠️"]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sdk(gateway: RunningGateway, **options: Any) -> Any:
    return anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, **options)


@pytest.fixture(params=["ollama", "openai", "anthropic"])
def upstream(
    request: pytest.FixtureRequest, start_gateway: StartGateway, fake: FakeOllama
) -> Iterator[RunningGateway]:
    """Córtex in front of the fake speaking each of the three upstream dialects."""
    prefix = "" if request.param == "ollama" else f"{request.param}+"
    yield start_gateway(upstream=prefix + fake.url)


def test_the_sdk_streams_an_answer_from_every_kind_of_server(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.01)
    with (
        sdk(upstream) as client,
        client.messages.stream(model=DEFAULT_MODEL, max_tokens=200, messages=HI) as stream,
    ):
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert "".join(pieces) == "".join(TOKENS)
    assert len(pieces) == len(TOKENS)  # each token is its own delta, not one batch at the end
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(TOKENS)
    assert message.content[0].type == "text"


def test_a_whole_message_from_every_kind_of_server(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS)
    with sdk(upstream) as client:
        message = client.messages.create(model=DEFAULT_MODEL, max_tokens=200, messages=HI)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "".join(TOKENS)
    assert message.stop_reason == "end_turn"


def test_tool_calls_reach_the_sdk_as_tool_use_blocks(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    fake.script = Script(tool_calls=({"name": "get_weather", "arguments": {"city": "Cádiz"}},))
    with (
        sdk(upstream) as client,
        client.messages.stream(
            model=DEFAULT_MODEL, max_tokens=200, messages=HI, tools=[WEATHER]
        ) as stream,
    ):
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    [call] = [block for block in message.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Cádiz"}
    assert call.id


def test_a_tool_result_goes_upstream_in_the_servers_dialect(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream=fake.url)
    messages = [
        *HI,
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Cádiz"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "soleado"}],
        },
    ]
    with sdk(gateway) as client:
        client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=50,
            system="Sé breve",
            messages=messages,
            tools=[WEATHER],
        )
    sent = fake.requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Sé breve"}
    assert sent["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "Cádiz"}
    assert sent["messages"][3]["role"] == "tool" and sent["messages"][3]["content"] == "soleado"
    assert sent["options"]["num_predict"] == 50
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]


def test_a_messages_server_gets_the_clients_bytes_and_the_client_its_bytes(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream="anthropic+" + fake.url)
    fake.script = Script(tokens=TOKENS)
    body = orjson.dumps({"model": DEFAULT_MODEL, "max_tokens": 9, "messages": HI, "stream": True})
    with httpx.Client(timeout=10) as http:
        direct = http.post(fake.url + "/v1/messages", content=body).content
        relayed = http.post(gateway.url + "/v1/messages", content=body)
    assert fake.requests[-1].body == body
    assert relayed.headers["x-cortex-backend"]
    # message ids differ between two answers; everything else is the server's own bytes
    assert without_ids(relayed.content) == without_ids(direct)


def without_ids(stream: bytes) -> list[bytes]:
    return [line for line in stream.split(b"\n") if b"msg_" not in line]


def test_ollama_and_openai_clients_in_front_of_a_messages_server(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream="anthropic+" + fake.url)
    fake.script = Script(tokens=TOKENS)
    answer = post_chat(gateway.url, {"model": DEFAULT_MODEL, "messages": HI})
    lines = [orjson.loads(line) for line in answer.content.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "".join(TOKENS)
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == len(TOKENS)
    assert fake.requests[-1].path == "/v1/messages"
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "".join(TOKENS)


def test_errors_come_in_anthropics_shape_with_its_statuses(gateway: RunningGateway) -> None:
    with sdk(gateway) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.messages.create(model="no-such-model", max_tokens=10, messages=HI)
        assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.create(model=DEFAULT_MODEL, max_tokens=10, messages=[])
        assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    answer = httpx.post(gateway.url + "/v1/messages", json={"model": DEFAULT_MODEL, "messages": HI})
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in answer.json()["error"]["message"]


def test_an_upstream_that_dies_mid_answer_is_an_error_event_not_a_quiet_end(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS, fault="reset_mid", fault_after=2)
    with (
        sdk(upstream) as client,
        pytest.raises(anthropic.APIStatusError) as failed,
        client.messages.stream(model=DEFAULT_MODEL, max_tokens=20, messages=HI) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_a_silent_queue_sends_pings_before_the_message_starts(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream=fake.url, heartbeat_interval=0.05)
    fake.script = Script(tokens=TOKENS, header_delay=0.3)
    body = {"model": DEFAULT_MODEL, "max_tokens": 9, "messages": HI, "stream": True}
    with httpx.Client(timeout=10) as http:
        raw = http.post(gateway.url + "/v1/messages", json=body).content
    assert raw.startswith(b"event: ping\n")
    with (
        sdk(gateway) as client,
        client.messages.stream(model=DEFAULT_MODEL, max_tokens=9, messages=HI) as stream,
    ):
        assert stream.get_final_text() == "".join(TOKENS)


def test_count_tokens_uses_the_servers_tokenizer_where_it_has_one(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.tokenizes = True
    body = {"model": DEFAULT_MODEL, "messages": HI}
    counted = httpx.post(
        start_gateway(upstream="openai+" + fake.url).url + "/v1/messages/count_tokens", json=body
    )
    assert counted.status_code == 200
    assert counted.headers["x-cortex-token-count"] == "tokenizer"
    assert counted.json() == {"input_tokens": len(("user " + HI[0]["content"]).split())}
    estimated = httpx.post(
        start_gateway(upstream=fake.url).url + "/v1/messages/count_tokens", json=body
    )
    assert estimated.headers["x-cortex-token-count"] == "estimate"
    assert estimated.json()["input_tokens"] > 0
    with anthropic.Anthropic(base_url=start_gateway(upstream=fake.url).url, api_key="x") as client:
        assert client.messages.count_tokens(model=DEFAULT_MODEL, messages=HI).input_tokens > 0


def test_thinking_is_dropped_for_a_model_that_cannot_think_as_ollama_does_for_claude_code(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS, thinks=False)
    with sdk(gateway) as client:
        message = client.messages.create(
            model=DEFAULT_MODEL,
            max_tokens=200,
            messages=HI,
            thinking={"type": "enabled", "budget_tokens": 2000},
        )
    assert message.content[0].text == "".join(TOKENS)
    refused, answered = fake.requests[-2:]
    assert refused.json["think"] is True
    assert "think" not in answered.json
    ollama = httpx.post(gateway.url + "/api/chat", json={**HELLO_OLLAMA, "think": True})
    assert ollama.status_code == 400  # an Ollama client asked for it outright: the server's 400
    assert "does not support thinking" in ollama.json()["error"]


HELLO_OLLAMA = {"model": DEFAULT_MODEL, "messages": HI, "stream": False}
