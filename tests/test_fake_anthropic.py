"""The fake's Messages API, proven against the official `anthropic` SDK and Córtex's reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cortex.dialects.anthropic.reader import MessagesReader
from cortex.events import (
    Event,
    Failure,
    Finish,
    Reasoning,
    Text,
    ToolArguments,
    ToolEnd,
    ToolStart,
    Usage,
)
from cortex.stream.lines import LineDecoder
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.fakes import anthropic_wire as wire
from tests.fakes.openai_wire import tool_arguments

anthropic = pytest.importorskip("anthropic")

HI = [{"role": "user", "content": "hola"}]
TOKENS = ["Había", " una", " vez", " 🦄"]
CALLS: tuple[dict[str, Any], ...] = (
    {"name": "get_weather", "arguments": {"city": "Sevilla", "days": 2}},
    {"name": "lookup", "arguments": {"q": "ñandú"}},
)


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[Any]:
    with anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0) as sdk:
        yield sdk


def raw_stream(fake: FakeOllama, **body: Any) -> bytes:
    payload = {"model": DEFAULT_MODEL, "max_tokens": 100, "messages": HI, "stream": True, **body}
    with httpx.Client(timeout=10) as http:
        response = http.post(fake.url + "/v1/messages", json=payload)
    assert response.status_code == 200
    assert response.headers["content-type"] == wire.SSE
    return response.content


def read(data: bytes) -> list[Event]:
    reader = MessagesReader()
    return reader.read(LineDecoder(keep_blank=True).feed(data)) + reader.close()


def test_the_sdk_streams_text_from_the_fake(fake: FakeOllama, client: Any) -> None:
    fake.script = Script(tokens=TOKENS)
    with client.messages.stream(model=DEFAULT_MODEL, max_tokens=100, messages=HI) as stream:
        assert "".join(stream.text_stream) == "".join(TOKENS)
        message = stream.get_final_message()
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (wire.PROMPT_TOKENS, 4)


def test_the_sdk_reads_thinking_and_tool_calls(fake: FakeOllama, client: Any) -> None:
    fake.script = Script(thinking=("Pienso", " más"), tool_calls=CALLS)
    with client.messages.stream(model=DEFAULT_MODEL, max_tokens=100, messages=HI) as stream:
        message = stream.get_final_message()
    thinking, *calls = message.content
    assert (thinking.thinking, thinking.signature) == ("Pienso más", wire.SIGNATURE)
    assert [(c.name, c.input) for c in calls] == [(c["name"], c["arguments"]) for c in CALLS]
    assert message.stop_reason == "tool_use"
    whole = client.messages.create(model=DEFAULT_MODEL, max_tokens=100, messages=HI)
    assert whole.model_dump()["content"] == message.model_dump()["content"]


def test_max_tokens_cuts_the_answer(fake: FakeOllama, client: Any) -> None:
    fake.script = Script(tokens=TOKENS)
    message = client.messages.create(model=DEFAULT_MODEL, max_tokens=2, messages=HI)
    assert message.content[0].text == "Había una"
    assert message.stop_reason == "max_tokens"


def test_the_reader_reads_the_fakes_stream(fake: FakeOllama) -> None:
    fake.script = Script(thinking=("Pienso",), tool_calls=CALLS[:1])
    pieces = wire.fragments(tool_arguments(CALLS[0]))
    assert read(raw_stream(fake)) == [
        Reasoning("Pienso"),
        Reasoning("", wire.SIGNATURE),
        ToolStart(0, wire.tool_use_id(0, "get_weather"), "get_weather"),
        *(ToolArguments(0, piece) for piece in pieces),
        ToolEnd(0),
        Finish("tool_calls", Usage(wire.PROMPT_TOKENS, 2 + len(pieces))),
    ]


def test_an_error_mid_stream_is_an_error_event(fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS, error_line_after=2, error_message="boom")
    events = read(raw_stream(fake))
    assert events == [Text("Había"), Text(" una"), Failure("boom")]


def test_a_reset_mid_stream_leaves_no_finish(fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS, fault="reset_mid", fault_after=2)
    payload = {"model": DEFAULT_MODEL, "max_tokens": 100, "messages": HI, "stream": True}
    received = b""
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", fake.url + "/v1/messages", json=payload) as response,
        pytest.raises(httpx.HTTPError),
    ):
        for chunk in response.iter_raw():
            received += chunk
    assert [e for e in read(received) if isinstance(e, Finish)] == []


def test_status_faults_and_refusals_are_anthropic_shaped(fake: FakeOllama, client: Any) -> None:
    fake.script = Script(fault="status", status=529)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=DEFAULT_MODEL, max_tokens=10, messages=HI)
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "api_error"
    fake.script = Script()
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=10, messages=HI)
    with httpx.Client(timeout=10) as http:
        response = http.post(
            fake.url + "/v1/messages", json={"model": DEFAULT_MODEL, "messages": HI}
        )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "max_tokens: Field required"


def test_the_key_is_checked_in_x_api_key(fake: FakeOllama) -> None:
    fake.api_key = "secret"
    with (
        anthropic.Anthropic(base_url=fake.url, api_key="wrong", max_retries=0) as sdk,
        pytest.raises(anthropic.AuthenticationError),
    ):
        sdk.messages.create(model=DEFAULT_MODEL, max_tokens=10, messages=HI)
    with anthropic.Anthropic(base_url=fake.url, api_key="secret", max_retries=0) as sdk:
        assert sdk.messages.create(model=DEFAULT_MODEL, max_tokens=10, messages=HI).content


def test_count_tokens_counts_the_words(fake: FakeOllama, client: Any) -> None:
    counted = client.messages.count_tokens(
        model=DEFAULT_MODEL,
        system="Sé breve",
        messages=[{"role": "user", "content": "hola a todos"}],
    )
    assert counted.input_tokens == 6  # "Sé", "breve", "user", "hola", "a", "todos"
