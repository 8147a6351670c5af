"""Properties, by hypothesis: chunking never changes an answer, translation never loses a field.

1. Any valid Ollama NDJSON stream and any valid OpenAI SSE stream, cut into chunks at any
   places, decodes (``LineDecoder`` → the codecs' readers) to the same events as the
   stream in one piece, to the events the stream encodes, and, through the same-dialect
   passthroughs, to the same bytes.
2. An Ollama chat request taken to the dialect-free shape, to an OpenAI body (through JSON
   text, as on the wire), back to the dialect-free shape and to an Ollama body keeps
   everything both dialects can say: message text, images, tool calls and their arguments,
   tool results' names, tools, temperature, top_p, seed, stop, max tokens, JSON format or
   schema.
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cortex.api.ollama import ChatBody as OllamaChatBody
from cortex.api.ollama import GenerateBody as OllamaGenerateBody
from cortex.api.openai import ChatCompletionRequest
from cortex.chat import ToolCall
from cortex.dialects.ollama import request as ollama_wire
from cortex.dialects.ollama.passthrough import OllamaPassthrough
from cortex.dialects.ollama.reader import OllamaReader
from cortex.dialects.ollama.writer import OllamaWriter
from cortex.dialects.openai import request as openai_wire
from cortex.dialects.openai.passthrough import OpenAIPassthrough
from cortex.dialects.openai.reader import OpenAIReader
from cortex.dialects.openai.writer import OpenAIWriter
from cortex.errors import BadRequest, UpstreamError
from cortex.events import (
    Answer,
    Event,
    Finish,
    Reasoning,
    Text,
    ToolArguments,
    ToolEnd,
    ToolStart,
    Usage,
)
from cortex.stream.encode import NDJSON, SSE
from cortex.stream.lines import LineDecoder
from cortex.stream.translate import CrossDialect
from tests.invariant import sse_events

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL = "llama3.2:latest"

# ---- strategies ------------------------------------------------------------------------------

text = st.text(max_size=12)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(names, json_value, max_size=4)
tool_call = st.builds(lambda name, args: ToolCall(name, args), names, arguments)


@dataclass
class Piece:
    """One streamed piece of an answer."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


pieces = st.lists(
    st.builds(Piece, text, st.just("") | text, st.just([]) | st.lists(tool_call, max_size=2)),
    max_size=8,
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


cuts = st.lists(st.integers(min_value=0, max_value=10**6), max_size=40)


# ---- driving the relay's stages by hand ------------------------------------------------------


def drive(translator: Any, chunks: list[bytes]) -> bytes:
    """What ``relay()`` does with an upstream's chunks, without the clock: lines out of the
    decoder into the translator, the last line without its newline at the end, then close."""
    decoder = LineDecoder(1 << 20, keep_blank=translator.reads_sse)
    out = bytearray()
    for chunk in chunks:
        lines = decoder.feed(chunk)
        if lines:
            out += translator.feed(lines)
            assert translator.failure is None, translator.failure
    last = decoder.flush()
    if last is not None:
        out += translator.feed([last])
        assert translator.failure is None, translator.failure
    out += translator.close()
    return bytes(out)


class Recorder:
    """A client writer that keeps the events it is given."""

    heartbeat = None

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, events: list[Event]) -> bytes:
        self.events += events
        return b""

    def whole(self, answer: Answer) -> bytes:
        raise AssertionError("a stream was asked for")

    def error(self, exc: Exception) -> bytes:
        raise AssertionError(f"no error expected: {exc}")


def recorded(reader: Any, chunks: list[bytes]) -> list[Event]:
    recorder = Recorder()
    drive(CrossDialect(reader, recorder, aggregate=False), chunks)
    return recorder.events


# ---- Ollama streams --------------------------------------------------------------------------


def ollama_stream(answer: list[Piece], done_reason: str, ascii_only: bool) -> bytes:
    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")).encode()

    lines = []
    for piece in answer:
        message: dict[str, Any] = {"role": "assistant", "content": piece.content}
        if piece.thinking:
            message["thinking"] = piece.thinking
        if piece.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in piece.tool_calls
            ]
        line = {"model": MODEL, "created_at": "2025-05-30T10:12:43Z", "message": message}
        lines.append(dumps({**line, "done": False}))
    final = {
        "model": MODEL,
        "created_at": "2025-05-30T10:12:43Z",
        "message": {"role": "assistant", "content": ""},
        "done_reason": done_reason,
        "done": True,
        "prompt_eval_count": 7,
        "eval_count": len(answer),
    }
    lines.append(dumps(final))
    return b"".join(line + b"\n" for line in lines)


def ollama_expected(answer: list[Piece], done_reason: str) -> list[Event]:
    called = any(p.tool_calls for p in answer)
    finish = "tool_calls" if called else ("length" if done_reason == "length" else "stop")
    events: list[Event] = []
    index = 0
    for piece in answer:
        if piece.thinking:
            events.append(Reasoning(piece.thinking))
        if piece.content:
            events.append(Text(piece.content))
        for call in piece.tool_calls:
            arguments = orjson.dumps(call.arguments).decode()
            events += [ToolStart(index, None, call.name), ToolArguments(index, arguments)]
            events.append(ToolEnd(index))
            index += 1
    return [*events, Finish(finish, Usage(7, len(answer)), durations={})]  # type: ignore[arg-type]


ollama_streams = st.tuples(pieces, st.sampled_from(["stop", "length"]), st.booleans())


@SETTINGS
@given(ollama_streams, cuts)
def test_any_chunking_of_an_ollama_stream_gives_the_same_events(
    stream: tuple[list[Piece], str, bool], points: list[int]
) -> None:
    answer, done_reason, ascii_only = stream
    body = ollama_stream(answer, done_reason, ascii_only)
    chunked = recorded(OllamaReader(), cut(body, points))
    assert chunked == recorded(OllamaReader(), [body])
    assert chunked == ollama_expected(answer, done_reason)


@SETTINGS
@given(ollama_streams, cuts)
def test_any_chunking_of_an_ollama_stream_passes_through_byte_for_byte(
    stream: tuple[list[Piece], str, bool], points: list[int]
) -> None:
    body = ollama_stream(*stream)
    lines = body.rstrip(b"\n").split(b"\n")
    ndjson = OllamaPassthrough(NDJSON)
    assert drive(ndjson, cut(body, points)) == body
    assert ndjson.complete
    sse = OllamaPassthrough(SSE)
    assert drive(sse, cut(body, points)) == b"".join(b"data: " + ln + b"\n\n" for ln in lines)
    assert sse.complete


@SETTINGS
@given(ollama_streams, cuts, st.booleans())
def test_any_chunking_of_an_ollama_stream_translates_to_the_same_openai_answer(
    stream: tuple[list[Piece], str, bool], points: list[int], include_usage: bool
) -> None:
    answer, done_reason, _ = stream
    body = ollama_stream(*stream)
    out = drive(
        CrossDialect(OllamaReader(), OpenAIWriter(MODEL, include_usage), aggregate=False),
        cut(body, points),
    )
    events = sse_events(out)
    assert events[-1] == ("message", "[DONE]")
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "".join(p.content for p in answer)
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "".join(
        p.thinking for p in answer
    )
    joined: dict[int, dict[str, str]] = {}  # as the SDKs join a call's fragments, by index
    for fragment in (c for d in deltas for c in d.get("tool_calls") or []):
        call = joined.setdefault(fragment["index"], {"name": "", "arguments": ""})
        call["name"] += fragment["function"].get("name", "")
        call["arguments"] += fragment["function"].get("arguments", "")
    sent = [c for p in answer for c in p.tool_calls]
    assert list(joined) == list(range(len(sent)))
    assert [(c["name"], orjson.loads(c["arguments"])) for c in joined.values()] == [
        (c.name, c.arguments) for c in sent
    ]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    last = ollama_expected(answer, done_reason)[-1]
    assert isinstance(last, Finish)
    assert finishes[-1] == last.reason
    assert bool(chunks[-1].get("usage")) == include_usage


# ---- OpenAI streams --------------------------------------------------------------------------


@dataclass
class SSEStyle:
    newline: bytes  # b"\n" or b"\r\n"
    space: bool  # "data: x" or "data:x"
    comments: bool  # ": keep-alive" comments between events
    multiline: bool  # each event's JSON spread over several data lines


sse_styles = st.builds(
    SSEStyle, st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.booleans(), st.booleans()
)


def openai_stream(
    answer: list[Piece], finish: str, usage: bool, style: SSEStyle
) -> tuple[bytes, list[bytes]]:
    """The stream as the upstream sends it, and its events as Córtex re-frames them."""
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**head, "choices": [choice]}

    events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    index = 0
    for piece in answer:
        delta: dict[str, Any] = {"content": piece.content}
        if piece.thinking:
            delta["reasoning_content"] = piece.thinking
        events.append(chunk(delta))
        for call in piece.tool_calls:
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            third = max(1, len(arguments) // 3)
            fragments = [arguments[i : i + third] for i in range(0, len(arguments), third)]
            opening = {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [{"index": index, **opening}]}))
            for fragment in fragments:
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                )
            index += 1
    events.append(chunk({}, finish))
    if usage:
        events.append(
            {
                **head,
                "choices": [],
                "usage": {
                    "prompt_tokens": 7,
                    "completion_tokens": len(answer),
                    "total_tokens": 7 + len(answer),
                },
            }
        )
    events.append("[DONE]")
    nl = style.newline
    body = bytearray()
    reframed = []
    for event in events:
        indent = 1 if style.multiline else None
        data = (
            event.encode()
            if isinstance(event, str)
            else json.dumps(event, ensure_ascii=False, indent=indent).encode()
        )
        prefix = b"data: " if style.space else b"data:"
        if style.comments:
            body += b": keep-alive" + nl + nl
        body += b"".join(prefix + part + nl for part in data.split(b"\n")) + nl
        # As SSE reads a field: one space after the colon is not part of the value.
        parts = [part if style.space else part.removeprefix(b" ") for part in data.split(b"\n")]
        reframed.append(b"".join(b"data: " + part + b"\n" for part in parts) + b"\n")
    return bytes(body), reframed


def openai_expected(answer: list[Piece], finish: str, usage: bool) -> list[Event]:
    """What the reader makes of ``openai_stream``: a call ends where text or the next call
    comes, or at the finish."""
    events: list[Event] = []
    index = 0
    open_call = False
    for piece in answer:
        if open_call and (piece.content or piece.thinking):
            events.append(ToolEnd(index - 1))
            open_call = False
        if piece.thinking:
            events.append(Reasoning(piece.thinking))
        if piece.content:
            events.append(Text(piece.content))
        for call in piece.tool_calls:
            if open_call:
                events.append(ToolEnd(index - 1))
            events.append(ToolStart(index, f"call_{index}", call.name))
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            third = max(1, len(arguments) // 3)
            events += [
                ToolArguments(index, arguments[i : i + third])
                for i in range(0, len(arguments), third)
            ]
            open_call = True
            index += 1
    if open_call:
        events.append(ToolEnd(index - 1))
    reason = "tool_calls" if index else finish
    counts = Usage(7, len(answer)) if usage else Usage()
    return [*events, Finish(reason, counts)]  # type: ignore[arg-type]


openai_streams = st.tuples(pieces, st.sampled_from(["stop", "length"]), st.booleans(), sse_styles)


@SETTINGS
@given(openai_streams, cuts)
def test_any_chunking_of_an_openai_stream_gives_the_same_events(
    stream: tuple[list[Piece], str, bool, SSEStyle], points: list[int]
) -> None:
    answer, finish, usage, _ = stream
    body, _ = openai_stream(*stream)
    chunked = recorded(OpenAIReader(), cut(body, points))
    assert chunked == recorded(OpenAIReader(), [body])
    assert chunked == openai_expected(answer, finish, usage)


@SETTINGS
@given(openai_streams, cuts)
def test_any_chunking_of_an_openai_stream_passes_through_event_for_event(
    stream: tuple[list[Piece], str, bool, SSEStyle], points: list[int]
) -> None:
    body, reframed = openai_stream(*stream)
    passthrough = OpenAIPassthrough()
    assert drive(passthrough, cut(body, points)) == b"".join(reframed)
    assert passthrough.complete


@SETTINGS
@given(openai_streams, cuts)
def test_any_chunking_of_an_openai_stream_translates_to_the_same_ollama_answer(
    stream: tuple[list[Piece], str, bool, SSEStyle], points: list[int]
) -> None:
    answer, finish, _, _ = stream
    body, _ = openai_stream(*stream)
    writer = OllamaWriter(MODEL, "chat", NDJSON)
    out = drive(CrossDialect(OpenAIReader(), writer, aggregate=False), cut(body, points))
    lines = [orjson.loads(line) for line in out.split(b"\n") if line]
    assert lines[-1]["done"] is True
    assert all(line["done"] is False for line in lines[:-1])
    messages = [line["message"] for line in lines]
    assert "".join(m["content"] for m in messages) == "".join(p.content for p in answer)
    assert "".join(m.get("thinking", "") for m in messages) == "".join(p.thinking for p in answer)
    calls = [c["function"] for m in messages for c in m.get("tool_calls", [])]
    sent = [c for p in answer for c in p.tool_calls]
    assert calls == [
        {"index": i, "name": c.name, "arguments": c.arguments} for i, c in enumerate(sent)
    ]
    expected_reason = "length" if finish == "length" and not calls else "stop"
    assert lines[-1]["done_reason"] == expected_reason


# ---- requests: Ollama → normalized → OpenAI → normalized → Ollama ----------------------------


@st.composite
def ollama_chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        user: dict[str, Any] = {"role": "user", "content": draw(text)}
        images = draw(st.lists(st.binary(min_size=1, max_size=24), max_size=2))
        if images:
            user["images"] = [base64.b64encode(image).decode() for image in images]
        messages.append(user)
        calls = draw(st.lists(tool_call, max_size=2))
        assistant: dict[str, Any] = {"role": "assistant", "content": draw(text)}
        if calls:
            assistant["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in calls
            ]
        messages.append(assistant)
        for call in calls:  # Ollama's tool results answer the calls in order
            messages.append({"role": "tool", "content": draw(text), "tool_name": call.name})
    payload: dict[str, Any] = {"model": MODEL, "messages": messages}
    options = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "temperature": st.floats(min_value=0, max_value=2),
                "top_p": st.floats(min_value=0, max_value=1),
                "seed": st.integers(min_value=0, max_value=2**31),
                "stop": st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3),
                "num_predict": st.integers(min_value=1, max_value=4096),
                "top_k": st.integers(min_value=1, max_value=100),
                "presence_penalty": st.floats(min_value=-2, max_value=2),
                "frequency_penalty": st.floats(min_value=-2, max_value=2),
            },
        )
    )
    if options:
        payload["options"] = options
    tools = draw(
        st.lists(
            st.builds(
                lambda name, description, properties: {
                    "type": "function",
                    "function": {
                        "name": name,
                        "description": description,
                        "parameters": {"type": "object", "properties": properties},
                    },
                },
                names,
                text,
                st.dictionaries(names, st.just({"type": "string"}), max_size=3),
            ),
            max_size=2,
        )
    )
    if tools:
        payload["tools"] = tools
    schema = st.dictionaries(names, json_value, min_size=1, max_size=3)
    fmt = draw(st.none() | st.just("json") | schema)
    if fmt is not None:
        payload["format"] = fmt
    return payload


def round_trip(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAI body on the wire, and the Ollama body made back from it."""
    openai_body = orjson.loads(
        orjson.dumps(openai_wire.request_body(ollama_wire.chat_request(payload)))
    )
    back = ollama_wire.request_body(openai_wire.chat_request(openai_body))
    return openai_body, orjson.loads(orjson.dumps(back))


def expressible(message: dict[str, Any]) -> dict[str, Any]:
    """What of an Ollama message both dialects can say."""
    kept = {k: message[k] for k in ("role", "content", "images", "tool_name") if k in message}
    if "tool_calls" in message:  # the ids and indexes made on the way are not compared
        functions = [call["function"] for call in message["tool_calls"]]
        kept["tool_calls"] = [{"name": f["name"], "arguments": f["arguments"]} for f in functions]
    return kept


@settings(max_examples=150, deadline=None)
@given(ollama_chat_requests())
def test_an_ollama_request_survives_the_trip_through_openais_dialect(
    payload: dict[str, Any],
) -> None:
    openai_body, back = round_trip(payload)
    assert [expressible(m) for m in back["messages"]] == [
        expressible(m) for m in payload["messages"]
    ]
    assert back.get("tools") == payload.get("tools")
    assert back.get("format") == payload.get("format")
    assert back.get("options", {}) == payload.get("options", {})
    assert openai_body["stream"] is True


# ---- robustness: whatever passes validation translates, or is a 400 --------------------------

KEYS = ("function", "name", "arguments", "type", "text", "image_url", "url", "content", "role")
KEYS += ("tool_calls", "id", "index", "images", "tool_name", "json_schema", "schema", "message")
KEYS += ("choices", "delta", "finish_reason", "usage", "reasoning_content", "done", "thinking")
KEYS += ("response", "prompt_tokens", "completion_tokens", "done_reason", "eval_count")
keys = st.sampled_from(KEYS) | text
any_json = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
loose_objects = st.dictionaries(keys, any_json, max_size=4)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool"]) | text
OPTION_NAMES = st.sampled_from([*ollama_wire.OPTIONS_TO_SAMPLING, "num_ctx", "mirostat"])


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy | any_json


loose_ollama_messages = st.fixed_dictionaries(
    {"role": ROLES},
    optional={
        "content": maybe(text),
        "images": maybe(st.lists(text, max_size=2)),
        "tool_calls": maybe(st.lists(loose_objects, max_size=2)),
        "tool_name": any_json,
    },
)
loose_ollama_chats = st.fixed_dictionaries(
    {"model": st.just(MODEL), "messages": st.lists(loose_ollama_messages, max_size=3)},
    optional={
        "format": any_json,
        "options": maybe(st.dictionaries(OPTION_NAMES, any_json, max_size=4)),
        "tools": maybe(st.lists(loose_objects, max_size=2)),
        "stream": any_json,
    },
)
OPENAI_ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool"])
loose_openai_messages = st.fixed_dictionaries(
    {"role": OPENAI_ROLES},
    optional={
        "content": st.none() | text | st.lists(loose_objects, max_size=3),
        "tool_calls": st.none() | st.lists(loose_objects, max_size=2),
        "tool_call_id": st.none() | text,
        "name": any_json,
    },
)
floats = st.none() | st.floats(allow_nan=False, allow_infinity=False)
ints = st.none() | st.integers(min_value=-(2**31), max_value=2**31)
loose_openai_chats = st.fixed_dictionaries(
    {"model": st.just(MODEL), "messages": st.lists(loose_openai_messages, max_size=3)},
    optional={
        "temperature": floats,
        "top_p": floats,
        "seed": ints,
        "n": st.none() | st.just(1) | ints,
        "max_tokens": ints,
        "max_completion_tokens": ints,
        "stop": st.none() | text | st.lists(text, max_size=2),
        **{name: any_json for name in ("top_k", "min_p", "repeat_penalty", "presence_penalty")},
        "response_format": st.none() | loose_objects,
        "tools": st.none() | st.lists(loose_objects, max_size=2),
        "stream_options": st.none() | loose_objects,
    },
)


def validated(model: Any, payload: dict[str, Any]) -> bool:
    try:
        model.model_validate(payload)
    except ValueError:
        return False
    return True


def translates_or_refuses(translate: Any, payload: dict[str, Any]) -> None:
    """``translate`` gives a body orjson can write, or raises BadRequest (a 400)."""
    try:
        body = translate(payload)
    except BadRequest:
        return
    orjson.dumps(body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(loose_ollama_chats)
def test_any_valid_ollama_chat_translates_to_openai_or_is_a_400(payload: dict[str, Any]) -> None:
    assume(validated(OllamaChatBody, payload))
    translates_or_refuses(lambda p: openai_wire.request_body(ollama_wire.chat_request(p)), payload)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    st.fixed_dictionaries(
        {"model": st.just(MODEL)},
        optional={
            "prompt": maybe(text),
            "system": maybe(text),
            "images": maybe(st.lists(text, max_size=2)),
            "raw": any_json,
            "format": any_json,
            "options": maybe(st.dictionaries(OPTION_NAMES, any_json, max_size=4)),
        },
    )
)
def test_any_valid_ollama_generate_translates_to_openai_or_is_a_400(
    payload: dict[str, Any],
) -> None:
    assume(validated(OllamaGenerateBody, payload))
    translates_or_refuses(
        lambda p: openai_wire.request_body(ollama_wire.generate_request(p)), payload
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(loose_openai_chats)
def test_any_valid_openai_chat_translates_to_ollama_or_is_a_400(payload: dict[str, Any]) -> None:
    assume(validated(ChatCompletionRequest, payload))
    translates_or_refuses(lambda p: ollama_wire.request_body(openai_wire.chat_request(p)), payload)


@settings(max_examples=200, deadline=None)
@given(st.lists(loose_objects, min_size=1, max_size=4))
def test_any_json_line_from_an_ollama_upstream_is_relayed_or_a_protocol_error(
    objects: list[dict[str, Any]],
) -> None:
    for writer in (OpenAIWriter(MODEL, True), OllamaWriter(MODEL, "chat", SSE)):
        translator = CrossDialect(OllamaReader(), writer, aggregate=False)
        translator.feed([orjson.dumps(o) for o in objects])
        if translator.failure is None and not translator.ended:
            with contextlib.suppress(UpstreamError):
                translator.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(loose_objects, min_size=1, max_size=4), st.booleans())
def test_any_json_event_from_an_openai_upstream_is_relayed_or_a_protocol_error(
    objects: list[dict[str, Any]], done: bool
) -> None:
    lines = [b"data: " + orjson.dumps(o) for o in objects] + ([b"data: [DONE]"] if done else [])
    for writer in (OllamaWriter(MODEL, "chat", NDJSON), OpenAIWriter(MODEL, False)):
        translator = CrossDialect(OpenAIReader(), writer, aggregate=False)
        translator.feed(lines)
        if translator.failure is None and not translator.ended:
            with contextlib.suppress(UpstreamError):
                translator.close()
