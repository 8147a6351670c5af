"""The Responses API codec: requests read into the neutral chat, events written as its stream."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cortex.api.body import validate
from cortex.dialects.responses import chat_request, conversation_items
from cortex.dialects.responses.schema import ResponsesRequest
from cortex.errors import BadRequest

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
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
        {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "*** x"},
        {"type": "custom_tool_call_output", "call_id": "c", "output": "done"},
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
        {"tools": [{**GITHUB, "tools": [{"type": "custom", "name": "apply_patch"}]}]},
        {"input": []},
    ],
)
def test_requests_that_cannot_be_served_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        chat_request({**ask(message("user", "hi")), **fields})
