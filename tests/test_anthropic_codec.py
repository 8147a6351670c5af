"""The Anthropic Messages codec: requests both ways, writer bytes, reader, passthrough."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cortex.chat import ChatRequest, Message, ToolCall
from cortex.dialects.anthropic.errors import error_body, error_event, error_type
from cortex.dialects.anthropic.passthrough import MessagesPassthrough
from cortex.dialects.anthropic.reader import MessagesReader
from cortex.dialects.anthropic.request import chat_request, count_request, request_body
from cortex.dialects.anthropic.schema import MessagesRequest
from cortex.dialects.anthropic.tokens import estimate_tokens, token_count, tokenize_body
from cortex.dialects.anthropic.writer import PING, MessagesWriter
from cortex.errors import BadRequest, IdleTimeout, UpstreamIncomplete, UpstreamProtocolError
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
from cortex.stream.lines import LineDecoder

PNG = "iVBORw0KGgo="
WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}


def body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **fields,
    }


def event_bytes(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


# ---- requests -------------------------------------------------------------------------


def test_every_block_type_reads_into_the_neutral_request() -> None:
    payload = body(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Weather?", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xxx"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Sevilla"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "31C"}],
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        stop_sequences=["END"],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stream=True,
        metadata={"user_id": "u"},
    )
    request = chat_request(payload)
    assert request.messages == [
        Message("system", "Be brief."),
        Message("user", "Look", images=[PNG]),
        Message(
            "assistant",
            "Checking.",
            tool_calls=[ToolCall("get_weather", {"city": "Sevilla"}, "toolu_1")],
            thinking="Weather?",
        ),
        Message("tool", "31C", tool_call_id="toolu_1", name="get_weather"),
        Message("user", "And tomorrow?"),
    ]
    assert request.sampling == {
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
    }
    assert request.stream is True
    assert request.include_usage is True


def test_a_system_turn_in_the_messages_is_a_system_message_in_its_place() -> None:
    payload = body(
        system="Be brief.",
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "Now in Spanish."}]},
            {"role": "assistant", "content": "Hola."},
            {"role": "system", "content": "Shorter."},
        ],
    )
    MessagesRequest.model_validate(payload)
    assert chat_request(payload).messages == [
        Message("system", "Be brief."),
        Message("user", "hi"),
        Message("system", "Now in Spanish."),
        Message("assistant", "Hola."),
        Message("system", "Shorter."),
    ]
    image = {"type": "image", "source": {"type": "base64", "data": PNG}}
    with pytest.raises(BadRequest, match=r"messages\.1\.content\.0: only text blocks"):
        chat_request(
            body(
                messages=[{"role": "user", "content": "hi"}, {"role": "system", "content": [image]}]
            )
        )


def test_a_tool_result_with_is_error_says_so_in_its_content() -> None:
    messages = [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}
            ],
        },
    ]
    request = chat_request(body(messages=messages))
    assert request.messages[-1] == Message("tool", "Error: boom", tool_call_id="t", name="f")


def test_tools_and_tool_choice_map_to_openai_function_tools() -> None:
    request = chat_request(
        body(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    )
    assert request.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object"},
            },
        }
    ]
    assert (request.tool_choice, request.forced_tool) == ("required", "get_weather")
    cases = [
        ({"type": "auto"}, "auto", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "none"}, "none", None),
    ]
    for choice, expected, parallel in cases:
        request = chat_request(body(tools=[WEATHER], tool_choice=choice))
        assert (request.tool_choice, request.parallel_tool_calls) == (expected, parallel)


def test_thinking_turns_think_on_or_off() -> None:
    assert chat_request(body(thinking={"type": "enabled", "budget_tokens": 2048})).think is True
    assert chat_request(body(thinking={"type": "disabled"})).think is False
    assert chat_request(body()).think is None
    assert chat_request(body(output_config={"effort": "max"})).think == "high"


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
                        ],
                    }
                ]
            ),
            "base64",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]),
            "'document'",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                    }
                ]
            ),
            "'tool_use'",
        ),
        (
            body(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
            "web_search_20250305",
        ),
        (body(tool_choice={"type": "tool"}), "tool_choice.name"),
        (body(mcp_servers=[{"type": "url", "url": "https://x"}]), "mcp_servers"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
            "messages.0.content.0.text",
        ),
    ],
)
def test_what_cannot_be_carried_is_a_bad_request_naming_it(
    payload: dict[str, Any], names: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        chat_request(payload)
    assert names in caught.value.message


def test_count_tokens_requests_need_no_max_tokens() -> None:
    request = count_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert request.messages == [Message("user", "hi")]


def test_the_request_model_validates_and_requires_max_tokens() -> None:
    MessagesRequest.model_validate(
        body(tools=[WEATHER], tool_choice={"type": "auto"}, extra_field=1)
    )
    with pytest.raises(ValueError, match="max_tokens"):
        MessagesRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        )


def test_the_neutral_request_is_written_as_a_messages_body() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message("system", "Be brief."),
            Message("user", "Look", images=[PNG]),
            Message(
                "assistant", "", tool_calls=[ToolCall("f", {"a": 1}, "toolu_1")], thinking="hmm"
            ),
            Message("tool", "42", tool_call_id="toolu_1"),
            Message("user", "Thanks"),
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        sampling={"max_tokens": 100, "temperature": 0.2, "stop": ["END"], "seed": 7},
        think=True,
        tool_choice="required",
        forced_tool="f",
        parallel_tool_calls=False,
    )
    assert request_body(request) == {
        "model": "m",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "Look"},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": ""},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "stream": True,
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }


def test_a_messages_body_survives_the_round_trip() -> None:
    payload = body(
        system="Be brief.",
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Sevilla"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "31C"}],
            },
        ],
        tools=[WEATHER],
        tool_choice={"type": "auto"},
        stop_sequences=["END"],
        temperature=0.5,
        thinking={"type": "disabled"},
        stream=True,
    )
    assert request_body(chat_request(payload)) == payload


def test_a_raw_prompt_cannot_go_to_a_messages_upstream() -> None:
    with pytest.raises(BadRequest):
        request_body(ChatRequest(model="m", messages=[], raw_prompt="x"))


# ---- the writer -------------------------------------------------------------------------


START = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    '"role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    '"usage":{"input_tokens":0,"output_tokens":0}}}\n\n'
)
STOP = 'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def block_start(index: int, block: str) -> str:
    return event_bytes(
        "content_block_start",
        f'{{"type":"content_block_start","index":{index},"content_block":{block}}}',
    ).decode()


def delta(index: int, value: str) -> str:
    return event_bytes(
        "content_block_delta", f'{{"type":"content_block_delta","index":{index},"delta":{value}}}'
    ).decode()


def block_stop(index: int) -> str:
    return event_bytes(
        "content_block_stop", f'{{"type":"content_block_stop","index":{index}}}'
    ).decode()


def message_delta(reason: str, usage: str, sequence: str = "null") -> str:
    stop = f'{{"stop_reason":"{reason}","stop_sequence":{sequence}}}'
    data = f'{{"type":"message_delta","delta":{stop},"usage":{usage}}}'
    return event_bytes("message_delta", data).decode()


def test_a_text_answer_is_written_as_anthropic_streams_it() -> None:
    writer = MessagesWriter("m", message_id="msg_1")
    out = writer.write([Text("Hola")]) + writer.write(
        [Text(" mundo"), Finish("stop", Usage(26, 2))]
    )
    assert out.decode() == (
        START
        + block_start(0, '{"type":"text","text":""}')
        + delta(0, '{"type":"text_delta","text":"Hola"}')
        + delta(0, '{"type":"text_delta","text":" mundo"}')
        + block_stop(0)
        + message_delta("end_turn", '{"input_tokens":26,"output_tokens":2}')
        + STOP
    )


def test_reasoning_then_text_are_two_blocks_and_a_stop_sequence_is_named() -> None:
    writer = MessagesWriter("m", message_id="msg_1")
    events: list[Event] = [
        Reasoning("Hmm"),
        Reasoning("", "c2ln"),
        Text("Sí"),
        Finish("stop", Usage(10, 3, cached_tokens=4), stop_sequence="END"),
    ]
    assert writer.write(events).decode() == (
        START
        + block_start(0, '{"type":"thinking","thinking":"","signature":""}')
        + delta(0, '{"type":"thinking_delta","thinking":"Hmm"}')
        + delta(0, '{"type":"signature_delta","signature":"c2ln"}')
        + block_stop(0)
        + block_start(1, '{"type":"text","text":""}')
        + delta(1, '{"type":"text_delta","text":"Sí"}')
        + block_stop(1)
        + message_delta(
            "stop_sequence",
            '{"input_tokens":6,"cache_read_input_tokens":4,"output_tokens":3}',
            '"END"',
        )
        + STOP
    )


def test_a_tool_call_streams_its_arguments_in_its_own_block() -> None:
    writer = MessagesWriter("m", input_tokens_hint=20, message_id="msg_1")
    events: list[Event] = [
        Text("Let me check."),
        ToolStart(0, "toolu_1", "get_weather"),
        ToolArguments(0, '{"city":'),
        ToolArguments(0, '"Sevilla"}'),
        ToolEnd(0),
        ToolStart(1, "toolu_2", "now"),
        ToolEnd(1),
        Finish("tool_calls", Usage(None, 9)),
    ]
    assert writer.write(events).decode() == (
        START.replace('"input_tokens":0', '"input_tokens":20')
        + block_start(0, '{"type":"text","text":""}')
        + delta(0, '{"type":"text_delta","text":"Let me check."}')
        + block_stop(0)
        + block_start(1, '{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}')
        + delta(1, '{"type":"input_json_delta","partial_json":"{\\"city\\":"}')
        + delta(1, '{"type":"input_json_delta","partial_json":"\\"Sevilla\\"}"}')
        + block_stop(1)
        + block_start(2, '{"type":"tool_use","id":"toolu_2","name":"now","input":{}}')
        + block_stop(2)
        + message_delta("tool_use", '{"input_tokens":20,"output_tokens":9}')
        + STOP
    )


def test_a_failure_is_an_error_event() -> None:
    writer = MessagesWriter("m", message_id="msg_1")
    out = writer.write([Text("Hi"), Failure("model crashed")])
    assert out.decode().endswith(
        block_start(0, '{"type":"text","text":""}')
        + delta(0, '{"type":"text_delta","text":"Hi"}')
        + 'event: error\ndata: {"type":"error",'
        + '"error":{"type":"api_error","message":"model crashed"}}\n\n'
    )
    assert writer.error(IdleTimeout("silent")) == (
        b'event: error\ndata: {"type":"error",'
        b'"error":{"type":"timeout_error","message":"silent"}}\n\n'
    )
    assert writer.heartbeat == b'event: ping\ndata: {"type": "ping"}\n\n'


def test_whole_is_one_message_object() -> None:
    answer = Answer()
    events: list[Event] = [
        Reasoning("Hmm"),
        Reasoning("", "c2ln"),
        Text("Sí"),
        ToolStart(0, "toolu_1", "f"),
        ToolArguments(0, '{"a": 1}'),
        ToolEnd(0),
        ToolStart(1, "toolu_2", "g"),
        ToolArguments(1, "{not json"),
        ToolEnd(1),
        Finish("tool_calls", Usage(26, 7)),
    ]
    for event in events:
        answer.add(event)
    assert orjson.loads(MessagesWriter("m", message_id="msg_1").whole(answer)) == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "Hmm", "signature": "c2ln"},
            {"type": "text", "text": "Sí"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {"_unparsed": "{not json"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 26, "output_tokens": 7},
    }


def test_error_types_follow_anthropics_statuses() -> None:
    assert {
        s: error_type(s) for s in (400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504, 529)
    } == {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        408: "invalid_request_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        502: "api_error",
        503: "overloaded_error",
        504: "timeout_error",
        529: "overloaded_error",
    }
    assert (
        error_body("no", 404)
        == b'{"type":"error","error":{"type":"not_found_error","message":"no"}}'
    )
    assert error_event("busy", 503).startswith(b"event: error\ndata: {")


# ---- the reader -------------------------------------------------------------------------


EVENTS: list[Event] = [
    Reasoning("Pienso… 🦄"),
    Reasoning("", "c2ln"),
    Text("Hola"),
    Text(" ñandú"),
    ToolStart(0, "toolu_1", "get_weather"),
    ToolArguments(0, '{"city":'),
    ToolArguments(0, '"Sevilla"}'),
    ToolEnd(0),
    ToolStart(1, "toolu_2", "now"),
    ToolArguments(1, "{}"),
    ToolEnd(1),
    Finish("tool_calls", Usage(26, 9)),
]


def read_cut(data: bytes, cut: int) -> list[Event]:
    """The events read from `data` arriving in two pieces, cut at `cut`."""
    lines, reader = LineDecoder(keep_blank=True), MessagesReader()
    events = reader.read(lines.feed(data[:cut])) + reader.read(lines.feed(data[cut:]))
    tail = lines.flush()
    return events + reader.read([tail] if tail is not None else []) + reader.close()


def test_the_writers_stream_reads_back_as_the_same_events_wherever_it_is_cut() -> None:
    data = MessagesWriter("m").write(EVENTS)
    for cut in range(len(data) + 1):
        assert read_cut(data, cut) == EVENTS, cut


MESSAGE_START = (
    '{"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant",'
    '"model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    '"usage":{"input_tokens":20,"cache_read_input_tokens":6,"output_tokens":1}}}'
)
MAX_TOKENS = '{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},'
# CRLF line ends, a ping, JSON with spaces, a delta of a kind Córtex skips, two message_deltas
UPSTREAM = (
    event_bytes("message_start", MESSAGE_START)
    + b'event: content_block_start\r\ndata: {"type":"content_block_start","index":0,'
    + b'"content_block":{"type":"text","text":""}}\r\n\r\n'
    + PING
    + event_bytes(
        "content_block_delta",
        '{"type": "content_block_delta", "index": 0, '
        '"delta": {"type": "text_delta", "text": "Hi"}}',
    )
    + event_bytes(
        "content_block_delta",
        '{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}',
    )
    + event_bytes("content_block_stop", '{"type":"content_block_stop","index":0}')
    + event_bytes("message_delta", MAX_TOKENS + '"usage":{"output_tokens":1}}')
    + event_bytes("message_delta", MAX_TOKENS + '"usage":{"output_tokens":2}}')
    + event_bytes("message_stop", '{"type":"message_stop"}')
)


def test_an_upstream_stream_reads_the_same_wherever_it_is_cut() -> None:
    expected = [Text("Hi"), Finish("length", Usage(26, 2, cached_tokens=6))]
    for cut in range(len(UPSTREAM) + 1):
        assert read_cut(UPSTREAM, cut) == expected, cut


def test_no_finish_before_message_stop() -> None:
    cut = UPSTREAM.index(b"event: message_stop")
    reader = MessagesReader()
    assert reader.read(LineDecoder(keep_blank=True).feed(UPSTREAM[:cut])) == [Text("Hi")]
    assert reader.close() == []


def test_an_error_event_is_a_failure() -> None:
    data = event_bytes(
        "error", '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    )
    assert MessagesReader().read(LineDecoder(keep_blank=True).feed(data)) == [Failure("Overloaded")]


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type":"content_block_delta","index":"0","delta":{"type":"text_delta","text":"x"}}',
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}',
        '{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t"}}',
    ],
)
def test_a_misshapen_event_is_a_protocol_error(data: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        MessagesReader().read(LineDecoder(keep_blank=True).feed(event_bytes("x", data)))


# ---- the passthrough --------------------------------------------------------------------


def test_the_passthrough_forwards_each_event_unchanged() -> None:
    relay = MessagesPassthrough()
    lines = LineDecoder(keep_blank=True)
    out = b"".join(relay.feed(lines.feed(UPSTREAM[i : i + 7])) for i in range(0, len(UPSTREAM), 7))
    out += relay.close()
    assert out == UPSTREAM.replace(b"\r\n", b"\n")
    assert relay.complete and not relay.ended
    assert (relay.usage, relay.pieces) == (Usage(26, 2, cached_tokens=6), 1)


def test_the_passthrough_refuses_an_answer_cut_short() -> None:
    relay = MessagesPassthrough()
    cut = UPSTREAM.index(b"event: message_stop")
    relay.feed(LineDecoder(keep_blank=True).feed(UPSTREAM[:cut]))
    with pytest.raises(UpstreamIncomplete):
        relay.close()


def test_the_passthrough_ends_after_an_upstream_error_and_stops_at_bad_json() -> None:
    relay = MessagesPassthrough()
    error = event_bytes("error", '{"type":"error","error":{"type":"api_error","message":"x"}}')
    assert relay.feed(LineDecoder(keep_blank=True).feed(error)) == error
    assert relay.ended and relay.close() == b""
    relay = MessagesPassthrough()
    assert relay.feed(LineDecoder(keep_blank=True).feed(event_bytes("ping", "oops"))) == b""
    assert isinstance(relay.failure, UpstreamProtocolError)


# ---- token counts -----------------------------------------------------------------------


def test_the_token_estimate_is_a_quarter_of_the_bytes() -> None:
    request = ChatRequest(model="m", messages=[Message("user", "x" * 30)])
    assert estimate_tokens(request) == 9  # "user\n" + 30 bytes = 35 bytes
    assert estimate_tokens(ChatRequest(model="m", messages=[])) == 0
    assert tokenize_body(request, "llama.cpp") == {"content": "user\n" + "x" * 30}
    assert tokenize_body(request, "vllm") == {"model": "m", "prompt": "user\n" + "x" * 30}
    assert token_count({"tokens": [1, 2, 3]}) == 3
    assert token_count({"count": 5, "tokens": [1]}) == 5
    assert token_count(["x"]) is None


# ---- the official SDK -------------------------------------------------------------------


def test_the_sdk_reads_the_writers_stream_and_whole_message() -> None:
    anthropic = pytest.importorskip("anthropic")
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(anthropic.types.RawMessageStreamEvent)
    data = MessagesWriter("m").write(EVENTS)
    blocks = data.decode().split("\n\n")[:-1]
    for block in blocks:
        name, payload = block.split("\n")
        parsed = adapter.validate_json(payload.removeprefix("data: "))
        assert name == "event: " + parsed.type
    answer = Answer()
    for event in EVENTS:
        answer.add(event)
    message = anthropic.types.Message.model_validate_json(MessagesWriter("m").whole(answer))
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.stop_reason == "tool_use"


def test_an_empty_text_opens_no_block() -> None:
    writer = MessagesWriter("m", message_id="msg_1")
    out = writer.write([Text(""), Finish("stop", Usage(26, 0))])
    assert out.decode() == (
        START + message_delta("end_turn", '{"input_tokens":26,"output_tokens":0}') + STOP
    )
