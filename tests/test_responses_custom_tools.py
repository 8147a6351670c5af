"""Custom tools (free text in, as Codex's ``apply_patch``) through the Responses codec: offered
to the model as a function of one string, its call written back as a ``custom_tool_call``, and
the client's ``custom_tool_call`` items read back as calls."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from cortex.dialects.responses import ResponsesWriter, chat_request
from cortex.dialects.responses.custom import input_text
from cortex.errors import BadRequest
from cortex.events import Answer, Event, Finish, ToolArguments, ToolEnd, ToolStart

STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files. This is a FREEFORM tool.",
    "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
}
PATCH = "*** Begin Patch\n*** Add File: hola.txt\n+hola\n*** End Patch\n"


def ask(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": list(items), "tools": [APPLY_PATCH], **fields}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": text}


def frames(stream: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in stream.removesuffix(b"\n\n").split(b"\n\n"):
        name, data = frame.split(b"\n")
        event = orjson.loads(data.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        STREAM_EVENT.validate_python(event)
        events.append(event)
    return events


def call_events(arguments: str) -> list[Event]:
    pieces = [arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]]
    return [
        ToolStart(0, "call_p", "apply_patch"),
        *(ToolArguments(0, piece) for piece in pieces),
        ToolEnd(0),
        Finish("tool_calls"),
    ]


def test_a_custom_tool_is_offered_as_a_function_of_one_string_with_its_grammar() -> None:
    [tool] = chat_request(ask(user("edit"))).tools or []
    function = tool["function"]
    assert (function["name"], function["description"]) == (
        "apply_patch",
        APPLY_PATCH["description"],
    )
    assert function["parameters"]["required"] == ["input"]
    argument = function["parameters"]["properties"]["input"]
    assert argument["type"] == "string" and GRAMMAR in argument["description"]


def test_a_call_of_a_custom_tool_streams_as_a_custom_tool_call_with_its_input() -> None:
    writer = ResponsesWriter("m", ask(user("edit")), "resp_1")
    events = frames(
        b"".join(writer.write([e]) for e in call_events(orjson.dumps({"input": PATCH}).decode()))
    )
    kinds = [e["type"].removeprefix("response.") for e in events]
    assert kinds == [
        "created",
        "in_progress",
        "output_item.added",
        "custom_tool_call_input.delta",
        "custom_tool_call_input.done",
        "output_item.done",
        "completed",
    ]
    assert events[2]["item"]["type"] == "custom_tool_call" and events[2]["item"]["input"] == ""
    assert events[3]["delta"] == PATCH and events[4]["input"] == PATCH
    done = events[5]["item"]
    assert (done["type"], done["call_id"], done["name"], done["input"]) == (
        "custom_tool_call",
        "call_p",
        "apply_patch",
        PATCH,
    )
    final = Response.model_validate(events[-1]["response"])
    assert final.output[0].type == "custom_tool_call"


def test_a_whole_response_carries_the_custom_tool_call() -> None:
    answer = Answer()
    for event in call_events(orjson.dumps({"input": PATCH}).decode()):
        answer.add(event)
    body = orjson.loads(ResponsesWriter("m", ask(user("edit"))).whole(answer))
    [item] = Response.model_validate(body).output
    assert item.type == "custom_tool_call" and item.input == PATCH


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        ('{"input":"a\\nb"}', "a\nb"),
        ('{"patch":"a"}', "a"),  # the only argument, by another name
        ('"a"', "a"),
        ('{"input":1,"x":2}', '{"input":1,"x":2}'),
        ("*** Begin Patch", "*** Begin Patch"),  # not JSON: the model wrote the text itself
    ],
)
def test_the_input_is_the_one_string_argument_else_what_the_model_wrote(
    arguments: str, text: str
) -> None:
    assert input_text(arguments) == text


def test_custom_tool_calls_and_outputs_come_back_as_a_call_and_its_result() -> None:
    items = [
        user("edit"),
        {
            "type": "custom_tool_call",
            "id": "ctc_1",
            "status": "completed",
            "call_id": "call_p",
            "name": "apply_patch",
            "input": PATCH,
        },
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Success."},
    ]
    messages = chat_request(ask(*items)).messages
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    [call] = messages[1].tool_calls
    assert (call.name, call.arguments, call.id) == ("apply_patch", {"input": PATCH}, "call_p")
    assert (messages[2].content, messages[2].tool_call_id) == ("Success.", "call_p")


def test_a_custom_tool_call_without_its_input_is_refused() -> None:
    item = {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch"}
    with pytest.raises(BadRequest, match="input"):
        chat_request(ask(user("edit"), item))


def test_tool_choice_can_force_a_custom_tool() -> None:
    request = chat_request(ask(user("edit"), tool_choice={"type": "custom", "name": "apply_patch"}))
    assert (request.tool_choice, request.forced_tool) == ("required", "apply_patch")
