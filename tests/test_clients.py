"""The official `openai` and `ollama` clients, unmodified, against Córtex.

Every test runs twice: with an Ollama upstream and with an OpenAI-compatible one,
so each client dialect is proven against each upstream dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import ollama
import openai
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script

TOKENS = ["Había", " una", " vez", " 🦄", " <ñ>"]
TOOL = {"name": "get_weather", "arguments": {"city": "Sevilla", "days": 2}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
]
HI = [{"role": "user", "content": "hola"}]


@pytest.fixture(params=["ollama", "openai"])
def upstream_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cortex(upstream_kind: str, fake: FakeOllama, start_gateway: StartGateway) -> RunningGateway:
    prefix = "openai+" if upstream_kind == "openai" else ""
    return start_gateway(upstream=prefix + fake.url)


@pytest.fixture
def oai(cortex: RunningGateway) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=cortex.url + "/v1", api_key="unused", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def oll(cortex: RunningGateway) -> Iterator[ollama.Client]:
    with ollama.Client(host=cortex.url) as client:
        yield client


def test_openai_streaming_chat_with_usage(oai: openai.OpenAI, fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS)
    stream = oai.chat.completions.create(
        model=DEFAULT_MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(TOKENS)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(TOKENS)


def test_openai_chat_without_streaming(oai: openai.OpenAI, fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS)
    completion = oai.chat.completions.create(model=DEFAULT_MODEL, messages=HI)
    assert completion.choices[0].message.content == "".join(TOKENS)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(TOKENS)


def test_openai_tool_calls_stream_and_finish_with_tool_calls(
    oai: openai.OpenAI, fake: FakeOllama
) -> None:
    fake.script = Script(tool_calls=(TOOL,))
    chunks = list(
        oai.chat.completions.create(model=DEFAULT_MODEL, messages=HI, tools=TOOLS, stream=True)  # type: ignore[arg-type]
    )
    fragments = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    name = "".join(f.function.name or "" for f in fragments if f.function)
    arguments = "".join(f.function.arguments or "" for f in fragments if f.function)
    assert name == "get_weather"
    assert json.loads(arguments) == TOOL["arguments"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_openai_sdk_joins_two_streamed_tool_calls_as_two(
    oai: openai.OpenAI, fake: FakeOllama
) -> None:
    """Ollama streams each call on its own line; the SDK tells them apart by index."""
    second = {"name": "get_time", "arguments": {"tz": "CET"}}
    fake.script = Script(tool_calls=(TOOL, second))
    with oai.chat.completions.stream(model=DEFAULT_MODEL, messages=HI, tools=TOOLS) as stream:  # type: ignore[arg-type]
        completion = stream.get_final_completion()
    calls = completion.choices[0].message.tool_calls or []
    functions = [(c.function.name, json.loads(c.function.arguments)) for c in calls]  # type: ignore[union-attr]
    assert functions == [("get_weather", TOOL["arguments"]), ("get_time", {"tz": "CET"})]
    assert len({c.id for c in calls}) == 2


def test_openai_tool_calls_without_streaming(oai: openai.OpenAI, fake: FakeOllama) -> None:
    fake.script = Script(tool_calls=(TOOL,))
    completion = oai.chat.completions.create(model=DEFAULT_MODEL, messages=HI, tools=TOOLS)  # type: ignore[arg-type]
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == TOOL["arguments"]  # type: ignore[union-attr]


def test_openai_lists_models(oai: openai.OpenAI, fake: FakeOllama) -> None:
    fake.models = ["alpha:1b", "beta:7b"]
    assert [m.id for m in oai.models.list()] == ["alpha:1b", "beta:7b"]
    assert oai.models.retrieve("beta:7b").id == "beta:7b"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gamma")


def test_openai_embeddings_in_both_encodings(oai: openai.OpenAI, fake: FakeOllama) -> None:
    default = oai.embeddings.create(model=DEFAULT_MODEL, input=["uno", "dos"])
    floats = oai.embeddings.create(
        model=DEFAULT_MODEL, input=["uno", "dos"], encoding_format="float"
    )
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) > 0
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, rel=1e-6)
    assert default.data[0].embedding != default.data[1].embedding


def test_openai_errors_are_the_sdks_own_exceptions(
    oai: openai.OpenAI, fake: FakeOllama, upstream_kind: str
) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=HI)
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model=DEFAULT_MODEL, messages=[{"role": "nobody"}])  # type: ignore[list-item]
    fake.script = Script(fault="status", status=500)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model=DEFAULT_MODEL, messages=HI)


def test_openai_stream_broken_mid_answer_raises_instead_of_ending_quietly(
    oai: openai.OpenAI, fake: FakeOllama
) -> None:
    fake.script = Script(tokens=TOKENS, fault="close_mid", fault_after=2)
    stream = oai.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True)
    received = []
    with pytest.raises(openai.APIError, match="before the answer was complete"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "".join(TOKENS[:2])


def test_openai_client_against_unreachable_upstream_gets_502(start_gateway: StartGateway) -> None:
    gateway = start_gateway(upstream="http://127.0.0.1:9")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HI)
    assert caught.value.status_code == 502
    client.close()


def test_ollama_streaming_chat(oll: ollama.Client, fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS)
    parts = list(oll.chat(model=DEFAULT_MODEL, messages=HI, stream=True))
    assert "".join(p.message.content or "" for p in parts) == "".join(TOKENS)
    assert parts[-1].done is True
    assert parts[-1].done_reason == "stop"
    assert parts[-1].eval_count == len(TOKENS)
    assert (parts[-1].total_duration or 0) > 0


def test_ollama_chat_without_streaming(oll: ollama.Client, fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS)
    answer = oll.chat(model=DEFAULT_MODEL, messages=HI, options={"temperature": 0.1, "seed": 3})
    assert answer.message.content == "".join(TOKENS)
    assert answer.done is True
    sent = fake.requests[-1].json
    sampling = sent.get("options") or sent
    assert sampling["temperature"] == 0.1
    assert sampling["seed"] == 3


def test_ollama_tool_calls(oll: ollama.Client, fake: FakeOllama) -> None:
    fake.script = Script(tool_calls=(TOOL,))
    answer = oll.chat(model=DEFAULT_MODEL, messages=HI, tools=TOOLS)
    assert answer.message.tool_calls is not None
    call = answer.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert dict(call.function.arguments) == TOOL["arguments"]


def test_ollama_generate_streams(oll: ollama.Client, fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS)
    parts = list(oll.generate(model=DEFAULT_MODEL, prompt="Érase una vez", stream=True))
    assert "".join(p.response for p in parts) == "".join(TOKENS)
    assert parts[-1].done is True


def test_ollama_lists_models(oll: ollama.Client, fake: FakeOllama) -> None:
    fake.models = ["alpha:1b", "beta:7b"]
    assert [m.model for m in oll.list().models] == ["alpha:1b", "beta:7b"]


def test_ollama_embed(oll: ollama.Client, fake: FakeOllama) -> None:
    answer = oll.embed(model=DEFAULT_MODEL, input=["uno", "dos"])
    assert len(answer.embeddings) == 2
    assert answer.embeddings[0] != answer.embeddings[1]
    single = oll.embed(model=DEFAULT_MODEL, input="uno")
    assert single.embeddings[0] == pytest.approx(answer.embeddings[0], rel=1e-6)


def test_ollama_embed_carries_the_timings_and_count_ollama_always_sends(
    oll: ollama.Client, fake: FakeOllama
) -> None:
    """Clients' response schemas (the AI SDK's Ollama provider) require all three."""
    answer = oll.embed(model=DEFAULT_MODEL, input=["uno dos", "tres"])
    assert isinstance(answer.total_duration, int) and answer.total_duration > 0
    assert isinstance(answer.load_duration, int)
    assert answer.prompt_eval_count == 3


def test_ollama_show_and_ps(oll: ollama.Client, fake: FakeOllama) -> None:
    assert oll.show(DEFAULT_MODEL) is not None
    assert oll.show(DEFAULT_MODEL.removesuffix(":latest")) is not None  # the tag is optional
    assert oll.ps().models is not None
    with pytest.raises(ollama.ResponseError) as caught:
        oll.show("no-such-model")
    assert caught.value.status_code == 404


def test_ollama_errors_carry_status_and_message(oll: ollama.Client, fake: FakeOllama) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        oll.chat(model="no-such-model", messages=HI)
    assert caught.value.status_code == 404
    assert "no-such-model" in caught.value.error


def test_ollama_stream_broken_mid_answer_raises(oll: ollama.Client, fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS, fault="close_mid", fault_after=2)
    received = []
    with pytest.raises(ollama.ResponseError, match="before the answer was complete"):
        for part in oll.chat(model=DEFAULT_MODEL, messages=HI, stream=True):
            received.append(part.message.content or "")
    assert "".join(received) == "".join(TOKENS[:2])
