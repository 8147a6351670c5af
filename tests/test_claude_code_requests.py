"""Claude Code's own requests, replayed through Córtex to each kind of model server.

The bodies in ``tests/fixtures/claude_code/`` are what Claude Code (the version in each
file's name) sent to Córtex, with long prompt texts trimmed and ids zeroed; the structure
is as it came. Each goes through the ``anthropic`` SDK, with Claude Code's headers and
``?beta=true``, and the answer must be a Messages stream the SDK accepts; what reached the
model server must carry the system prompt, every tool with its schema, and the conversation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeOllama, Script

anthropic = pytest.importorskip("anthropic")
# the SDK warns on Claude model names it has retired; here they only name a local model
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "claude_code").glob("*.json"))
TOKENS = ["Hola", " desde", " Córtex"]
BILLING = "x-anthropic-billing-header:"
BASH = {"name": "Bash", "arguments": {"command": "echo hi", "description": "Say hi"}}


def load(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = orjson.loads(path.read_bytes())
    return fixture


def fixture(scenario: str) -> dict[str, Any]:
    return load(next(path for path in FIXTURES if path.stem.endswith("-" + scenario)))


@pytest.fixture(params=FIXTURES, ids=lambda path: path.stem)
def sent(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


@pytest.fixture(params=["ollama", "openai", "anthropic"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gateway(start_gateway: StartGateway, fake: FakeOllama, dialect: str) -> RunningGateway:
    prefix = "" if dialect == "ollama" else f"{dialect}+"
    return start_gateway(upstream=prefix + fake.url)


def replay(gateway: RunningGateway, fake: FakeOllama, sent: dict[str, Any]) -> Any:
    """Send a Claude Code request as Claude Code did; the SDK's final message."""
    body = dict(sent["body"])
    fake.models = [body["model"]]
    model, max_tokens, messages = body.pop("model"), body.pop("max_tokens"), body.pop("messages")
    assert body.pop("stream") is True
    path, _, query = sent["path"].partition("?")
    assert path == "/v1/messages" and query == "beta=true"
    headers = {k: v for k, v in sent["headers"].items() if k.startswith(("anthropic-", "x-"))}
    client = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    with (
        client,
        client.messages.stream(
            model=model,
            max_tokens=max_tokens,
            messages=messages,
            extra_body=body,
            extra_headers={**headers, "user-agent": sent["headers"]["user-agent"]},
            extra_query={"beta": "true"},
        ) as stream,
    ):
        return stream.get_final_message()


def upstream_view(dialect: str, received: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and the tools (name and schema) as the model server got them."""
    if dialect == "anthropic":
        system = received.get("system") or []
        text = "\n\n".join(block["text"] for block in system)
        return text, [{"name": t["name"], "schema": t["input_schema"]} for t in received["tools"]]
    system = next(m for m in received["messages"] if m["role"] == "system")  # the first
    tools = [t["function"] for t in received["tools"]]
    return system["content"], [{"name": t["name"], "schema": t["parameters"]} for t in tools]


def tool_results(dialect: str, received: dict[str, Any]) -> list[str]:
    """The ids of the tool results the model server got, in order."""
    if dialect == "anthropic":
        return [
            block["tool_use_id"]
            for turn in received["messages"]
            if isinstance(turn["content"], list)
            for block in turn["content"]
            if block["type"] == "tool_result"
        ]
    return [m["tool_call_id"] for m in received["messages"] if m["role"] == "tool"]


def test_each_claude_code_request_streams_an_answer_from_every_kind_of_server(
    fake: FakeOllama, gateway: RunningGateway, dialect: str, sent: dict[str, Any]
) -> None:
    fake.script = Script(tokens=TOKENS)
    message = replay(gateway, fake, sent)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "".join(TOKENS)
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == len(TOKENS)
    received = fake.requests[-1].json
    body = sent["body"]
    if dialect == "anthropic":
        assert received == body  # relayed as it came
    system, tools = upstream_view(dialect, received)
    for block in body["system"]:
        kept = dialect == "anthropic" or not block["text"].startswith(BILLING)
        assert (block["text"] in system) is kept
    assert tools == [{"name": t["name"], "schema": t["input_schema"]} for t in body["tools"]]
    asked = [
        block["tool_use_id"]
        for turn in body["messages"]
        if isinstance(turn["content"], list)
        for block in turn["content"]
        if block["type"] == "tool_result"
    ]
    assert sorted(tool_results(dialect, received)) == sorted(asked)


def test_an_instruction_claude_code_gives_mid_conversation_reaches_the_model_in_its_place(
    fake: FakeOllama, gateway: RunningGateway, dialect: str
) -> None:
    """For a model it does not know, Claude Code sends its list of agents as a ``system``
    turn after the first user turn (beta ``mid-conversation-system``), not as a reminder."""
    sent = fixture("other-model")
    [user, instruction] = sent["body"]["messages"]
    assert instruction["role"] == "system"
    fake.script = Script(tokens=TOKENS)
    assert replay(gateway, fake, sent).content[0].text == "".join(TOKENS)
    received = fake.requests[-1].json
    if dialect == "anthropic":
        assert received["messages"] == [user, instruction]
        return
    roles = [m["role"] for m in received["messages"]]
    assert roles == ["system", "user", "system"]
    assert received["messages"][-1]["content"] == instruction["content"]


def test_reasoning_reaches_claude_code_as_a_thinking_block_before_the_text(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(thinking=("Pienso", " primero"), tokens=TOKENS)
    thinking, text = replay(gateway, fake, fixture("first-turn")).content
    assert thinking.type == "thinking" and thinking.thinking == "Pienso primero"
    assert text.type == "text" and text.text == "".join(TOKENS)


@pytest.mark.parametrize("dialect", ["ollama", "openai"])
def test_a_tool_call_id_the_server_repeats_reaches_claude_code_renewed(
    fake: FakeOllama, gateway: RunningGateway, dialect: str
) -> None:
    """The fake, like some servers, numbers its calls the same way in every answer."""
    fake.script = Script(tool_calls=(BASH,))
    [first] = replay(gateway, fake, fixture("first-turn")).content
    sent = fixture("tool-results")
    earlier = next(
        block["id"]
        for turn in sent["body"]["messages"]
        if turn["role"] == "assistant"
        for block in turn["content"]
        if block["type"] == "tool_use"
    )
    sent["body"] = orjson.loads(
        orjson.dumps(sent["body"]).replace(earlier.encode(), first.id.encode())
    )
    message = replay(gateway, fake, sent)
    [call] = message.content
    assert call.type == "tool_use" and call.name == "Bash" and call.input == BASH["arguments"]
    assert message.stop_reason == "tool_use"
    assert call.id != first.id and call.id.startswith("toolu_")


def test_claude_code_counts_tokens_on_every_kind_of_server(
    fake: FakeOllama, gateway: RunningGateway, sent: dict[str, Any]
) -> None:
    body = {k: v for k, v in sent["body"].items() if k not in ("max_tokens", "stream")}
    fake.models = [body["model"]]
    answer = httpx.post(
        gateway.url + "/v1/messages/count_tokens?beta=true",
        content=orjson.dumps(body),
        headers=sent["headers"],
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["input_tokens"] > 1000


def test_the_fixtures_name_the_cli_version_that_sent_them() -> None:
    assert FIXTURES
    for path in FIXTURES:
        fixture = load(path)
        assert path.name.startswith(fixture["cli"] + "-")
        assert fixture["headers"]["user-agent"].startswith(f"claude-cli/{fixture['cli']} ")
