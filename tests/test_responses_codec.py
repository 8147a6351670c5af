"""The Responses API codec: requests read into the neutral chat, events written as its stream."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from cortex.api.body import validate
from cortex.dialects.responses import ResponsesWriter, chat_request, conversation_items
from cortex.dialects.responses.schema import ResponsesRequest
from cortex.errors import BadRequest, IdleTimeout
from cortex.events import (
    Answer,
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

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
OBJECT = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}
EXEC = {"type": "function", "name": "exec_command", "description": "Run", "parameters": OBJECT}
GITHUB = {
    "type": "namespace",
    "name": "mcp__github__",
    "description": "GitHub",
    "tools": [
        {"type": "function", "name": "create_issue", "strict": False, "parameters": OBJECT},
        {"type": "function", "name": "exec_command", "parameters": OBJECT},
    ],
}
# What Codex 0.171 sends: its tools, earlier calls and their outputs, items with ids.
CODEX: dict[str, Any] = {
    "model": "gpt-oss:20b",
    "instructions": "You are Codex, a coding agent.",
    "input": [
        {
            "type": "message",
            "role": "developer",
            "content": [
                {"type": "input_text", "text": "<permissions>workspace-write</permissions>"}
            ],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "<environment_context/>"}],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ls?"}]},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Run ls."}],
            "content": [{"type": "reasoning_text", "text": "I should run ls."}],
            "encrypted_content": "gAAAAB-opaque",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "name": "exec_command",
            "arguments": '{"cmd":"ls"}',
            "call_id": "call_1",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "README.md\nsrc\n"},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Two entries."}],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "File it"}]},
        {
            "type": "function_call",
            "id": "fc_2",
            "namespace": "mcp__github__",
            "name": "create_issue",
            "arguments": '{"cmd":"x"}',
            "call_id": "call_2",
        },
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "created #7"}],
        },
    ],
    "tools": [EXEC, GITHUB, {"type": "web_search", "external_web_access": False}],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199a1b2-session",
    "client_metadata": {"x-codex-turn-metadata": '{"turn_id":"t1"}'},
    "text": {"verbosity": "low"},
}


def test_codex_request_is_valid_against_the_published_schema() -> None:
    validate(ResponsesRequest, copy.deepcopy(CODEX))


def test_codex_request_with_builtin_tools_refused_names_the_tool() -> None:
    with pytest.raises(BadRequest, match="'web_search'"):
        chat_request(CODEX)


def test_codex_request_reads_into_one_chat() -> None:
    request = chat_request(CODEX, builtin_tools="drop")
    turns = [(m.role, m.content) for m in request.messages]
    assert turns == [
        ("system", "You are Codex, a coding agent."),
        ("system", "<permissions>workspace-write</permissions>"),
        ("user", "<environment_context/>"),
        ("user", "ls?"),
        ("assistant", ""),
        ("tool", "README.md\nsrc\n"),
        ("assistant", "Two entries."),
        ("user", "File it"),
        ("assistant", ""),
        ("tool", "created #7"),
    ]
    call = request.messages[4]
    assert call.thinking == "I should run ls."
    assert [(c.id, c.name, c.arguments) for c in call.tool_calls] == [
        ("call_1", "exec_command", {"cmd": "ls"})
    ]
    assert request.messages[5].name == "exec_command"
    assert request.messages[5].tool_call_id == "call_1"
    # exec_command is declared twice: the namespaced one is qualified, the other keeps its name.
    assert request.messages[8].tool_calls[0].name == "create_issue"
    assert [t["function"]["name"] for t in request.tools or []] == [
        "exec_command",
        "create_issue",
        "mcp__github__.exec_command",
    ]
    assert request.tools and request.tools[0]["function"]["parameters"] == OBJECT
    assert (request.think, request.tool_choice, request.parallel_tool_calls) == (
        "medium",
        "auto",
        False,
    )
    assert request.stream is True and request.format is None


def message(role: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": content, **extra}


def ask(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": list(items), **fields}


def test_string_input_is_one_user_message_after_the_instructions() -> None:
    request = chat_request({"model": "m", "input": "Hi", "instructions": "Be brief"})
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief"),
        ("user", "Hi"),
    ]


def test_parts_join_and_data_url_images_become_base64() -> None:
    parts = [
        {"type": "input_text", "text": "What is "},
        {"type": "input_text", "text": "this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"},
    ]
    (m,) = chat_request(ask(message("user", parts))).messages
    assert (m.content, m.images) == ("What is this?", [PNG])


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
        {"type": "input_image", "file_id": "file_1"},
        {"type": "input_file", "file_id": "file_1"},
        {"type": "audio", "data": ""},
    ],
)
def test_parts_that_cannot_be_sent_are_refused(part: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        chat_request(ask(message("user", [part])))


def test_consecutive_calls_are_one_assistant_turn_with_its_text_and_reasoning() -> None:
    items = [
        message("user", "weather?"),
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Two cities."}]},
        message("assistant", [{"type": "output_text", "text": "Checking."}]),
        {"type": "function_call", "call_id": "a", "name": "w", "arguments": '{"c":"Oslo"}'},
        {"type": "function_call", "call_id": "b", "name": "w", "arguments": ""},
        {"type": "function_call_output", "call_id": "b", "output": "sun"},
        {"type": "function_call_output", "call_id": "a", "output": "rain"},
    ]
    messages = chat_request(ask(*items)).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    turn = messages[1]
    assert (turn.content, turn.thinking) == ("Checking.", "Two cities.")
    assert [(c.id, c.arguments) for c in turn.tool_calls] == [("a", {"c": "Oslo"}), ("b", {})]
    assert [(m.tool_call_id, m.name, m.content) for m in messages[2:]] == [
        ("b", "w", "sun"),
        ("a", "w", "rain"),
    ]


def test_reasoning_with_no_assistant_turn_after_it_is_left_out() -> None:
    items = [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "x"}]}]
    messages = chat_request(ask(message("user", "a"), *items, message("user", "b"))).messages
    assert [(m.role, m.thinking) for m in messages] == [("user", ""), ("user", "")]


@pytest.mark.parametrize(
    ("items", "says"),
    [
        ([{"type": "function_call_output", "call_id": "x", "output": "1"}], "No tool call found"),
        ([{"type": "function_call", "call_id": "x", "name": "f", "arguments": "[1]"}], "object"),
        ([{"type": "function_call", "call_id": "x", "name": "f", "arguments": "{"}], "object"),
        ([{"type": "item_reference", "id": "msg_9"}], "msg_9"),
        ([{"type": "web_search_call", "id": "ws_1", "status": "completed"}], "web_search_call"),
        ([message("tool", "x")], "role"),
        ([{"type": "telepathy"}], "telepathy"),
    ],
)
def test_items_that_cannot_be_read_are_refused(items: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        chat_request(ask(message("user", "hi"), *items))


def test_builtin_calls_and_their_outputs_are_dropped_under_drop() -> None:
    items = [
        message("user", "hi"),
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {}},
        {"type": "local_shell_call", "call_id": "c", "status": "completed", "action": {}},
        {"type": "local_shell_call_output", "call_id": "c", "output": "done"},
        message("assistant", "ok"),
    ]
    messages = chat_request(ask(*items), builtin_tools="drop").messages
    assert [(m.role, m.content) for m in messages] == [("user", "hi"), ("assistant", "ok")]


def test_history_comes_first_and_item_references_resolve_against_it() -> None:
    history = [
        message("user", "Name a colour", id="msg_a"),
        message("assistant", "Red", id="msg_b"),
    ]
    payload = ask({"type": "item_reference", "id": "msg_a"}, message("user", "Another"))
    request = chat_request({**payload, "instructions": "Terse"}, history)
    assert [m.content for m in request.messages] == [
        "Terse",
        "Name a colour",
        "Red",
        "Name a colour",
        "Another",
    ]


def test_a_stored_conversation_holds_history_input_and_output_without_instructions() -> None:
    history = [message("user", "a")]
    response = {"output": [message("assistant", [{"type": "output_text", "text": "b"}])]}
    items = conversation_items({"input": "c", "instructions": "x"}, history, response)
    assert [i["role"] for i in items] == ["user", "user", "assistant"]


def test_sampling_format_and_effort() -> None:
    fields = {
        "max_output_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "text": {"format": {"type": "json_schema", "name": "x", "schema": OBJECT}},
        "reasoning": {"effort": "minimal"},
    }
    request = chat_request(ask(message("user", "hi"), **fields))
    assert request.sampling == {"temperature": 0.2, "top_p": 0.9, "max_tokens": 64}
    assert (request.format, request.think) == (OBJECT, "low")
    json_object = {"text": {"format": {"type": "json_object"}}, "reasoning": {"effort": "none"}}
    request = chat_request(ask(message("user", "hi"), **json_object))
    assert (request.format, request.think) == ("json", False)
    plain = chat_request(ask(message("user", "hi"), text={"format": {"type": "text"}}))
    assert (plain.format, plain.think, plain.stream) == (None, None, False)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", ("none", None, 3)),
        ("required", ("required", None, 3)),
        ({"type": "function", "name": "exec_command"}, ("required", "exec_command", 3)),
        (
            {"type": "function", "namespace": "mcp__github__", "name": "exec_command"},
            ("required", "mcp__github__.exec_command", 3),
        ),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [EXEC]},
            ("auto", None, 1),
        ),
    ],
)
def test_tool_choice(choice: Any, expected: tuple[str, str | None, int]) -> None:
    request = chat_request(ask(message("user", "hi"), tools=[EXEC, GITHUB], tool_choice=choice))
    assert (request.tool_choice, request.forced_tool, len(request.tools or [])) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"tool_choice": {"type": "function", "name": "missing"}},
        {"tool_choice": {"type": "web_search"}},
        {"background": True},
        {"tools": [{"type": "file_search", "vector_store_ids": []}]},
        {"tools": [{**GITHUB, "tools": [{"type": "web_search"}]}]},
        {"tools": [{"type": "custom", "name": "patch", "format": {"type": "regex"}}]},
        {"input": []},
    ],
)
def test_requests_that_cannot_be_served_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        chat_request({**ask(message("user", "hi")), **fields})


def frames(stream: bytes) -> list[dict[str, Any]]:
    """Each event of a stream, checked against its SSE name and the SDK's event types."""
    assert stream.endswith(b"\n\n")
    events = []
    for frame in stream[:-2].split(b"\n\n"):
        name, data = frame.split(b"\n")
        event = orjson.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        STREAM_EVENT.validate_python(event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def run(events: list[Event], **echo: Any) -> tuple[ResponsesWriter, list[dict[str, Any]]]:
    writer = ResponsesWriter("m", {"model": "m", "input": "hi", **echo}, "resp_1")
    stream = b"".join(writer.write([e]) for e in events)
    return writer, frames(stream)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


OPENING = ["created", "in_progress"]


def test_text_is_one_message_item() -> None:
    writer, events = run([Text("Hel"), Text("lo"), Finish("stop", Usage(5, 2, 1))])
    assert types(events) == [
        *OPENING,
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    created = events[0]["response"]
    assert (created["status"], created["output"], created["model"]) == ("in_progress", [], "m")
    delta = events[4]
    assert (delta["delta"], delta["output_index"], delta["content_index"]) == ("Hel", 0, 0)
    assert delta["item_id"] == events[2]["item"]["id"] and delta["logprobs"] == []
    final = Response.model_validate(events[-1]["response"])
    assert (final.status, final.output_text, final.id) == ("completed", "Hello", "resp_1")
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (
        5,
        2,
        7,
    )
    assert final.usage.input_tokens_details.cached_tokens == 1
    assert "output_text" not in events[-1]["response"]
    assert writer.response == events[-1]["response"]


def test_reasoning_is_reasoning_text_then_text_is_a_second_item() -> None:
    _, events = run([Reasoning("Hmm"), Reasoning("."), Text("Yes"), Finish("stop")])
    assert types(events)[2:9] == [
        "output_item.added",
        "content_part.added",
        "reasoning_text.delta",
        "reasoning_text.delta",
        "reasoning_text.done",
        "content_part.done",
        "output_item.done",
    ]
    assert events[8]["item"]["content"] == [{"type": "reasoning_text", "text": "Hmm."}]
    assert events[9]["output_index"] == 1 and events[9]["item"]["type"] == "message"
    final = Response.model_validate(events[-1]["response"])
    assert [item.type for item in final.output] == ["reasoning", "message"]


def test_reasoning_is_a_summary_for_a_client_that_asked_for_one() -> None:
    _, events = run([Reasoning("Hmm"), Text("Yes"), Finish("stop")], reasoning={"summary": "auto"})
    assert types(events)[2:8] == [
        "output_item.added",
        "reasoning_summary_part.added",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.done",
        "reasoning_summary_part.done",
        "output_item.done",
    ]
    assert events[4]["summary_index"] == 0
    assert events[7]["item"]["summary"] == [{"type": "summary_text", "text": "Hmm"}]


def test_a_tool_call_streams_its_arguments() -> None:
    writer, events = run(
        [
            ToolStart(0, "call_a", "exec_command"),
            ToolArguments(0, '{"cmd"'),
            ToolArguments(0, ':"ls"}'),
            ToolEnd(0),
            Finish("tool_calls"),
        ],
        tools=[EXEC],
    )
    assert types(events) == [
        *OPENING,
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    added = events[2]["item"]
    assert (added["call_id"], added["name"], added["arguments"], added["status"]) == (
        "call_a",
        "exec_command",
        "",
        "in_progress",
    )
    assert events[5]["arguments"] == '{"cmd":"ls"}'
    assert events[6]["item"]["arguments"] == '{"cmd":"ls"}'
    assert events[6]["item"]["status"] == "completed"
    assert writer.response and writer.response["output"] == [events[6]["item"]]


def test_a_call_of_a_namespaced_tool_names_its_namespace() -> None:
    events: list[Event] = [
        ToolStart(0, None, "create_issue"),
        ToolEnd(0),
        ToolStart(1, None, "exec_command"),
        ToolEnd(1),
        ToolStart(2, None, "mcp__github__.exec_command"),
        ToolEnd(2),
    ]
    _, written = run([*events, Finish("tool_calls")], tools=[EXEC, GITHUB])
    calls = [e["item"] for e in written if e["type"] == "response.output_item.done"]
    assert [(c.get("namespace"), c["name"], c["arguments"]) for c in calls] == [
        ("mcp__github__", "create_issue", "{}"),
        (None, "exec_command", "{}"),
        ("mcp__github__", "exec_command", "{}"),
    ]
    assert all(c["call_id"].startswith("call_") for c in calls)


def test_the_output_limit_ends_the_response_incomplete() -> None:
    _, events = run([Text("Once upon"), Finish("length", Usage(3, 2))], max_output_tokens=2)
    assert types(events)[-2:] == ["output_item.done", "incomplete"]
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "incomplete" and final.max_output_tokens == 2
    assert final.incomplete_details and final.incomplete_details.reason == "max_output_tokens"
    assert events[-2]["item"]["status"] == "incomplete"


def test_an_upstream_failure_fails_the_response() -> None:
    writer, events = run([Text("Hi"), Failure("model crashed"), Text("ignored")])
    assert types(events)[-1] == "failed"
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error
    assert (failed.error.code, failed.error.message) == ("server_error", "model crashed")
    assert writer.write([Text("more")]) == b"" and writer.error(IdleTimeout("late")) == b""


def test_an_error_after_the_start_is_an_error_event_then_failed() -> None:
    writer = ResponsesWriter("m", {"model": "m"})
    stream = writer.write([Text("Hi")]) + writer.error(IdleTimeout("the model went silent"))
    events = frames(stream)
    assert types(events)[-2:] == ["error", "failed"]
    assert events[-2]["message"] == "the model went silent"
    assert writer.response and writer.response["status"] == "failed"
    assert writer.response["id"].startswith("resp_")


def test_the_echo_carries_the_request_settings() -> None:
    echo = {
        "instructions": "Be brief",
        "tools": [EXEC, GITHUB],
        "tool_choice": "required",
        "temperature": 0.5,
        "top_p": 0.8,
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_object"}},
        "reasoning": {"effort": "high", "summary": "auto"},
        "store": True,
        "previous_response_id": "resp_0",
        "metadata": {"k": "v"},
    }
    _, events = run([Finish("stop")], **echo)
    created = Response.model_validate(events[0]["response"])
    for key, value in echo.items():
        assert events[0]["response"][key] == value, key
    assert created.reasoning and created.reasoning.effort == "high"


def test_whole_is_one_response_object() -> None:
    answer = Answer()
    events: list[Event] = [
        Reasoning("Think"),
        Text("Calling."),
        ToolStart(0, None, "create_issue"),
        ToolArguments(0, '{"cmd":"x"}'),
        ToolEnd(0),
        Finish("tool_calls", Usage(10, 4, reasoning_tokens=1)),
    ]
    for event in events:
        answer.add(event)
    writer = ResponsesWriter("m", {"model": "m", "tools": [GITHUB]})
    body = orjson.loads(writer.whole(answer))
    response = Response.model_validate(body)
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    assert (response.output_text, response.status) == ("Calling.", "completed")
    assert body["output"][2]["namespace"] == "mcp__github__"
    assert response.usage and response.usage.output_tokens_details.reasoning_tokens == 1
    assert writer.response == body and "output_text" not in body


def test_items_written_come_back_as_the_same_turn() -> None:
    writer, _ = run(
        [Reasoning("Plan"), ToolStart(0, "c1", "create_issue"), ToolEnd(0), Finish("tool_calls")],
        tools=[GITHUB],
    )
    assert writer.response
    items = [message("user", "go"), *writer.response["output"]]
    items.append({"type": "function_call_output", "call_id": "c1", "output": "ok"})
    messages = chat_request(ask(*items, tools=[GITHUB])).messages
    assert [(m.role, m.thinking) for m in messages] == [
        ("user", ""),
        ("assistant", "Plan"),
        ("tool", ""),
    ]
    assert messages[1].tool_calls[0].name == "create_issue"


def test_the_heartbeat_is_an_sse_comment() -> None:
    assert ResponsesWriter.heartbeat == b": keep-alive\n\n"


def test_an_empty_text_makes_no_message_item() -> None:
    _, events = run([Text(""), Finish("stop", Usage(5, 0))])
    assert types(events) == [*OPENING, "completed"]
