"""What Codex CLI sent to ``POST /v1/responses`` (tests/fixtures/codex, recorded from the real
CLI), replayed with its headers through a real Córtex to Ollama and OpenAI-compatible servers:
every stream parses with the ``openai`` SDK's event types and ends completed, a scripted call of
Codex's shell or ``apply_patch`` tool comes back as the item Codex runs, and the model server
is given Codex's developer instructions, its function tools with their schemas, and the
conversation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeOllama, RecordedRequest, Script

FIXTURES = Path(__file__).parent / "fixtures" / "codex"
RECORDED = sorted(path.name for path in FIXTURES.glob("*.json"))
STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
ANSWER = ["Here", " are", " the", " files."]
PATCH = "*** Begin Patch\n*** Add File: hola.txt\n+hola\n*** End Patch\n"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.fixture(params=["ollama", "openai"])
def upstream(
    request: pytest.FixtureRequest, start_gateway: StartGateway, fake: FakeOllama
) -> RunningGateway:
    fake.models = sorted({recorded(name)["body"]["model"] for name in RECORDED})
    prefix = "" if request.param == "ollama" else "openai+"
    return start_gateway(upstream=prefix + fake.url)


def replay(gateway: RunningGateway, codex: dict[str, Any]) -> list[Any]:
    """Send what Codex sent, and read the stream as the SDK's events."""
    headers = {**codex["headers"], "Authorization": "Bearer x"}
    body = orjson.dumps(codex["body"])
    url = gateway.url + codex["path"]
    with httpx.stream("POST", url, content=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes())
    events = []
    for frame in raw.split(b"\n\n"):
        if not frame or frame.startswith(b":"):
            continue
        name, data = frame.split(b"\n")
        event = STREAM_EVENT.validate_python(orjson.loads(data.removeprefix(b"data: ")))
        assert name == b"event: " + event.type.encode()
        events.append(event)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


def final(events: list[Any]) -> Response:
    assert isinstance(events[-1], ResponseCompletedEvent), events[-1]
    return events[-1].response


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content or [])


def expected_conversation(body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """Codex's items as the chat the model should be given: texts by role, and calls."""
    roles = {"developer": "system", "user": "user", "assistant": "assistant"}
    texts: list[tuple[str, str]] = []
    calls: list[tuple[str, str, Any]] = []
    for item in body["input"]:
        kind = item.get("type")
        if kind == "message" and text_of(item["content"]):
            texts.append((roles[item["role"]], text_of(item["content"])))
        elif kind == "function_call":
            calls.append((item["call_id"], item["name"], json.loads(item["arguments"])))
        elif kind == "custom_tool_call":
            calls.append((item["call_id"], item["name"], {"input": item["input"]}))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            texts.append(("tool", text_of(item["output"])))
    return texts, calls


def given_conversation(sent: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    texts = [(m["role"], m["content"]) for m in sent["messages"] if m.get("content")]
    calls = []
    for message in sent["messages"]:
        for call in message.get("tool_calls") or []:
            arguments = call["function"]["arguments"]
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
            calls.append((call["id"], call["function"]["name"], arguments))
    return texts, calls


def declared_tools(body: dict[str, Any]) -> dict[str, Any]:
    """The tools Codex declared that a local model can call, by name: functions (namespaced
    ones too) with their schemas, and custom tools (their schema is Córtex's: one string)."""
    tools: dict[str, Any] = {}
    for tool in body["tools"]:
        for member in tool["tools"] if tool["type"] == "namespace" else [tool]:
            if member["type"] in ("function", "custom"):
                tools[member["name"]] = member.get("parameters", "custom")
    return tools


def assert_upstream_holds(codex: dict[str, Any], request: RecordedRequest) -> None:
    assert request.path in ("/api/chat", "/v1/chat/completions")
    sent, body = request.json, codex["body"]
    [first_developer, *_] = [i for i in body["input"] if i.get("role") == "developer"]
    assert sent["messages"][0] == {
        **sent["messages"][0],
        "role": "system",
        "content": text_of(first_developer["content"]),
    }
    assert given_conversation(sent) == expected_conversation(body)
    offered = {t["function"]["name"]: t["function"].get("parameters") for t in sent["tools"]}
    declared = declared_tools(body)
    assert offered.keys() == declared.keys()
    for name, schema in declared.items():
        if schema == "custom":
            assert offered[name]["properties"]["input"]["type"] == "string"
        else:
            assert offered[name] == schema, name


@pytest.mark.parametrize("name", RECORDED)
def test_every_codex_request_streams_a_completed_answer(
    name: str, fake: FakeOllama, upstream: RunningGateway
) -> None:
    codex = recorded(name)
    fake.script = Script(tokens=ANSWER)
    events = replay(upstream, codex)
    response = final(events)
    assert response.output_text == "".join(ANSWER)
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ANSWER
    assert (response.store, response.prompt_cache_key) == (False, codex["body"]["prompt_cache_key"])
    assert_upstream_holds(codex, fake.requests[-1])


def test_codex_gets_the_shell_call_it_runs(fake: FakeOllama, upstream: RunningGateway) -> None:
    codex = recorded("first-turn.json")
    fake.script = Script(tool_calls=({"name": "exec_command", "arguments": {"cmd": "ls"}},))
    response = final(replay(upstream, codex))
    [call] = response.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, json.loads(call.arguments), call.status) == (
        "exec_command",
        {"cmd": "ls"},
        "completed",
    )
    assert call.call_id and call.namespace is None
    assert_upstream_holds(codex, fake.requests[-1])


def test_codex_gets_apply_patch_as_its_custom_tool_call(
    fake: FakeOllama, upstream: RunningGateway
) -> None:
    codex = recorded("first-turn.json")
    fake.script = Script(
        tool_calls=({"name": "apply_patch", "arguments": {"input": PATCH}},),
        thinking=("A new file.",),
    )
    events = replay(upstream, codex)
    [reasoning, call] = final(events).output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "A new file."
    assert isinstance(call, ResponseCustomToolCall)
    assert (call.name, call.input) == ("apply_patch", PATCH)
    [done] = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert done.input == PATCH
