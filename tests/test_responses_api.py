"""OpenAI's Responses API through Córtex with the official ``openai`` SDK over real sockets:
streamed and whole answers from any kind of server, tool calls, and the state Ollama does not
keep (stored responses chained by ``previous_response_id``, read, listed, deleted, per key)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from cortex.access.keys import generate_key, hash_key
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.redis_server import RedisServer, running_redis

TOKENS = ["Había", " una", " vez", " 🦄"]
SHELL = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}


def client(gateway: RunningGateway, key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture(params=["ollama", "openai", "anthropic"])
def upstream(
    request: pytest.FixtureRequest, start_gateway: StartGateway, fake: FakeOllama
) -> RunningGateway:
    prefix = "" if request.param == "ollama" else f"{request.param}+"
    return start_gateway(upstream=prefix + fake.url)


def test_a_whole_response_from_every_kind_of_server(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS)
    response = client(upstream).responses.create(model=DEFAULT_MODEL, input="Cuéntame algo")
    assert response.status == "completed"
    assert response.output_text == "".join(TOKENS)
    assert response.usage is not None and response.usage.output_tokens == len(TOKENS)


def test_a_streamed_response_from_every_kind_of_server(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.01)
    with client(upstream).responses.stream(model=DEFAULT_MODEL, input="Cuéntame algo") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == TOKENS
    assert final.status == "completed" and final.output_text == "".join(TOKENS)


def test_a_tool_call_and_its_output_go_round(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(tool_calls=({"name": "exec_command", "arguments": {"cmd": "ls"}},))
    sdk = client(gateway)
    first = sdk.responses.create(model=DEFAULT_MODEL, input="¿Qué hay aquí?", tools=[SHELL])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "exec_command" and call.arguments == '{"cmd":"ls"}'
    fake.script = Script(tokens=["Nada"])
    second = sdk.responses.create(
        model=DEFAULT_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "README.md"}],
        tools=[SHELL],
    )
    assert second.output_text == "Nada"
    sent = fake.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == {"cmd": "ls"}
    assert sent[2]["content"] == "README.md"


def test_a_stored_response_is_chained_read_listed_and_deleted(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    sdk = client(gateway)
    fake.script = Script(tokens=["Me llamo Ana."])
    first = sdk.responses.create(
        model=DEFAULT_MODEL, input="Hola, soy Ana", instructions="Sé breve"
    )
    fake.script = Script(tokens=["Ana."])
    second = sdk.responses.create(
        model=DEFAULT_MODEL, input="¿Cómo me llamo?", previous_response_id=first.id
    )
    sent = fake.requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Hola, soy Ana"),
        ("assistant", "Me llamo Ana."),
        ("user", "¿Cómo me llamo?"),
    ]  # instructions are not carried over, as OpenAI does not carry them
    assert sdk.responses.retrieve(second.id).output_text == "Ana."
    items = sdk.responses.input_items.list(second.id, order="asc")
    texts = [part.text for item in items.data for part in item.content]  # type: ignore[union-attr]
    assert texts == ["Hola, soy Ana", "Me llamo Ana.", "¿Cómo me llamo?"]
    sdk.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model=DEFAULT_MODEL, input="?", previous_response_id=second.id)


def test_item_references_to_stored_items_resolve_without_previous_response_id(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    """The AI SDK's default OpenAI provider sends each earlier output item of a stored
    response as an ``item_reference`` and names no previous response."""
    mine, theirs = generate_key(), generate_key()
    keys = [
        {"name": "mine", "key_hash": hash_key(mine)},
        {"name": "theirs", "key_hash": hash_key(theirs)},
    ]
    gateway = start_gateway(keys=keys)
    fake.script = Script(thinking=("Pienso",), tokens=["Me llamo", " Ana."])
    with client(gateway, mine).responses.stream(model=DEFAULT_MODEL, input="Hola") as stream:
        first = stream.get_final_response()
    reasoning, message = first.output
    assert (reasoning.type, message.type) == ("reasoning", "message")
    fake.script = Script(tokens=["Ana."])
    turn: Any = [
        {"role": "user", "content": "Hola"},
        {"type": "item_reference", "id": reasoning.id},
        {"type": "item_reference", "id": message.id},
        {"role": "user", "content": "¿Cómo me llamo?"},
    ]
    second = client(gateway, mine).responses.create(model=DEFAULT_MODEL, input=turn)
    assert second.output_text == "Ana."
    sent = fake.requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Hola"),
        ("assistant", "Me llamo Ana."),
        ("user", "¿Cómo me llamo?"),
    ]
    assert sent[1]["thinking"] == "Pienso"
    with pytest.raises(openai.BadRequestError, match="item_reference"):
        client(gateway, theirs).responses.create(model=DEFAULT_MODEL, input=turn)


def test_store_false_keeps_nothing(fake: FakeOllama, gateway: RunningGateway) -> None:
    sdk = client(gateway)
    response = sdk.responses.create(model=DEFAULT_MODEL, input="hola", store=False)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_another_key_cannot_see_a_stored_response(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    mine, theirs = generate_key(), generate_key()
    keys = [
        {"name": "mine", "key_hash": hash_key(mine)},
        {"name": "theirs", "key_hash": hash_key(theirs)},
    ]
    gateway = start_gateway(keys=keys)
    made = client(gateway, mine).responses.create(model=DEFAULT_MODEL, input="secreto")
    assert client(gateway, mine).responses.retrieve(made.id).id == made.id
    with pytest.raises(openai.NotFoundError):
        client(gateway, theirs).responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client(gateway, theirs).responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client(gateway, theirs).responses.create(
            model=DEFAULT_MODEL, input="?", previous_response_id=made.id
        )


def test_an_answer_cut_by_its_token_limit_is_incomplete(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS, done_reason="length")
    response = client(gateway).responses.create(
        model=DEFAULT_MODEL, input="hola", max_output_tokens=4
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert fake.requests[-1].json["options"]["num_predict"] == 4


def codex_request(**extra: Any) -> dict[str, Any]:
    """A request shaped as Codex CLI sends it."""
    return {
        "model": DEFAULT_MODEL,
        "instructions": None,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "You are Codex."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "lista los ficheros"}],
            },
        ],
        "tools": [
            {**SHELL, "strict": False},
            {"type": "web_search"},
            {"type": "namespace", "name": "mcp__files", "tools": [{**SHELL, "name": "read"}]},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a7c2-conversation",
        "client_metadata": {"x-codex-turn": "1"},
        **extra,
    }


def test_what_codex_sends_is_answered_and_hosted_tools_are_dropped(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS)
    body = {k: v for k, v in codex_request().items() if v is not None}
    answer = httpx.post(
        gateway.url + "/v1/responses",
        json=body,
        headers={"accept-encoding": "zstd, gzip"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers.get("content-encoding") is None
    assert b"event: response.completed" in answer.content
    sent = fake.requests[-1].json
    assert [t["function"]["name"] for t in sent["tools"]] == ["exec_command", "read"]
    assert sent["messages"][0] == {"role": "system", "content": "You are Codex."}


def test_hosted_tools_are_refused_by_name_when_the_policy_says_so(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(builtin_tools="refuse")
    body = {k: v for k, v in codex_request().items() if v is not None}
    answer = httpx.post(gateway.url + "/v1/responses", json=body, timeout=10)
    assert answer.status_code == 400
    assert "web_search" in answer.json()["error"]["message"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis()


def test_with_redis_every_instance_sees_every_stored_response(
    fake: FakeOllama, start_gateway: StartGateway, redis_server: RedisServer
) -> None:
    key = generate_key()
    shared = {"redis_url": redis_server.url, "keys": [{"name": "k", "key_hash": hash_key(key)}]}
    one, two = start_gateway(**shared), start_gateway(**shared)
    fake.script = Script(tokens=["Me llamo Ana."])
    first = client(one, key).responses.create(model=DEFAULT_MODEL, input="Hola, soy Ana")
    fake.script = Script(tokens=["Ana."])
    second = client(two, key).responses.create(
        model=DEFAULT_MODEL, input="¿Cómo me llamo?", previous_response_id=first.id
    )
    assert [m["content"] for m in fake.requests[-1].json["messages"]] == [
        "Hola, soy Ana",
        "Me llamo Ana.",
        "¿Cómo me llamo?",
    ]
    assert client(one, key).responses.retrieve(second.id).output_text == "Ana."


def test_a_reasoning_effort_is_dropped_for_a_model_that_cannot_think(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=TOKENS, thinks=False)
    response = client(gateway).responses.create(
        model=DEFAULT_MODEL, input="hola", reasoning={"effort": "medium"}
    )
    assert response.output_text == "".join(TOKENS)
    assert fake.requests[-2].json["think"] == "medium"
    assert "think" not in fake.requests[-1].json
