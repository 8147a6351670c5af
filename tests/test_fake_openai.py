"""The fake's OpenAI-compatible mode, proven against the official `openai` SDK and the raw wire."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from tests.fakes import DEFAULT_MODEL, FakeOllama, Script, vectors
from tests.test_fake_server import DATE, TS, dechunk, read_all, send

TS_EPOCH = 1_717_243_200  # TS, in whole seconds
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hola"}]
TOKENS = ["Había", " una", " vez", " 🦄", ' <ñ>&"\n']
CALLS: tuple[dict[str, Any], ...] = (
    {"name": "get_weather", "arguments": {"city": "Sevilla", "days": 2}},
    {"name": "lookup", "arguments": {"q": "ñandú 🦄", "tags": ["a", "b"], "deep": {"x": None}}},
)
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {"type": "function", "function": {"name": call["name"], "parameters": {"type": "object"}}}
    for call in CALLS
]


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.url + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def chat_stream(fake: FakeOllama, **body: Any) -> tuple[list[bytes], bool]:
    """POST a streaming chat on a raw socket; the chunk payloads and whether they ended."""
    payload = {"model": DEFAULT_MODEL, "messages": HI, "stream": True, **body}
    with send(fake.port, "/v1/chat/completions", payload) as sock:
        head, raw, _ = read_all(sock)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    return dechunk(raw)


def events(chunks: list[bytes]) -> list[Any]:
    """The SSE events' data, JSON-decoded ("[DONE]" kept as is)."""
    blocks = b"".join(chunks).decode().split("\n\n")
    assert blocks[-1] == ""
    datas = [block.removeprefix("data: ") for block in blocks[:-1]]
    return [data if data == "[DONE]" else json.loads(data) for data in datas]


# ---- raw wire -------------------------------------------------------------------------


def test_chat_stream_is_byte_exact(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["Hola", ' <b>&"ñ🦄\n'], created_at=TS, completion_id="abc")
    payload = {"model": DEFAULT_MODEL, "messages": HI, "stream": True}
    with send(fake.port, "/v1/chat/completions", payload) as sock:
        head, raw, _ = read_all(sock)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert lines[1] == "Content-Type: text/event-stream; charset=utf-8"
    assert DATE.fullmatch(lines[2])
    assert lines[3:] == ["Connection: close", "Transfer-Encoding: chunked"]
    chunks, terminated = dechunk(raw)
    assert terminated
    prefix = (
        b'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1717243200,'
        b'"model":"fake-llama:latest","system_fingerprint":"fp_fake","choices":[{"index":0,'
        b'"delta":'
    )
    tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    assert chunks == [
        prefix + b'{"role":"assistant","content":""}' + tail,
        prefix + b'{"content":"Hola"}' + tail,
        prefix + '{"content":" <b>&\\"ñ🦄\\n"}'.encode() + tail,
        prefix + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]


def test_include_usage_adds_a_usage_chunk_and_nulls(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["a", "b", "c"])
    chunks, _ = chat_stream(fake, stream_options={"include_usage": True})
    *chunk_events, done = events(chunks)
    assert done == "[DONE]"
    assert all(list(e)[-2:] == ["choices", "usage"] for e in chunk_events)
    assert all(e["usage"] is None for e in chunk_events[:-1])
    assert chunk_events[-1]["choices"] == []
    assert chunk_events[-1]["usage"] == {
        "prompt_tokens": 26,
        "completion_tokens": 3,
        "total_tokens": 29,
    }
    assert chunk_events[-2]["choices"][0]["finish_reason"] == "stop"
    assert b'"usage"' not in b"".join(chat_stream(fake)[0])  # only when asked for


def test_non_streaming_chat_completion(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["Hola", " ñ"], created_at=TS, completion_id="z")
    resp = httpx.post(
        f"{fake.url}/v1/chat/completions", json={"model": "fake-llama", "messages": HI}
    )
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert (
        resp.content
        == (
            '{"id":"chatcmpl-z","object":"chat.completion","created":1717243200,"model":"fake-llama",'
            '"choices":[{"index":0,"message":{"role":"assistant","content":"Hola ñ",'
            '"refusal":null},"logprobs":null,"finish_reason":"stop"}],'
            '"usage":{"prompt_tokens":26,"completion_tokens":2,"total_tokens":28},'
            '"system_fingerprint":"fp_fake"}'
        ).encode()
    )


def test_max_tokens_cuts_with_length(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(count=10)
    chunks, _ = chat_stream(fake, max_tokens=3)
    contents = [e["choices"][0]["delta"].get("content") for e in events(chunks)[:-1]]
    assert contents == ["", "tok0 ", "tok1 ", "tok2 ", None]
    assert events(chunks)[-2]["choices"][0]["finish_reason"] == "length"
    answer = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=HI, max_completion_tokens=2
    )
    assert answer.choices[0].message.content == "tok0 tok1 "
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 2


def test_tool_call_arguments_arrive_in_fragments(fake: FakeOllama) -> None:
    fake.script = Script(tool_calls=CALLS)
    chunks, _ = chat_stream(fake, tools=TOOLS)
    deltas = [e["choices"][0]["delta"] for e in events(chunks)[:-1]]
    assert deltas[0] == {"role": "assistant", "content": None}
    header = deltas[1]["tool_calls"][0]
    assert header["function"] == {"name": "get_weather", "arguments": ""}
    assert header["type"] == "function" and header["id"].startswith("call_")
    pieces: dict[int, list[str]] = {0: [], 1: []}
    for delta in deltas[1:-1]:
        (call,) = delta["tool_calls"]
        pieces[call["index"]].append(call["function"]["arguments"])
    assert all(2 <= len([p for p in parts if p]) <= 3 for parts in pieces.values())
    assert [json.loads("".join(pieces[i])) for i in (0, 1)] == [c["arguments"] for c in CALLS]
    assert events(chunks)[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert fake.requests[-1].json["tools"] == TOOLS


def test_thinking_streams_reasoning_content_first(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["42"], thinking=("Hmm", ", ñ"))
    deltas = [e["choices"][0]["delta"] for e in events(chat_stream(fake)[0])[:-1]]
    assert deltas[1:4] == [
        {"reasoning_content": "Hmm"},
        {"reasoning_content": ", ñ"},
        {"content": "42"},
    ]
    resp = httpx.post(
        f"{fake.url}/v1/chat/completions", json={"model": "fake-llama", "messages": HI}
    )
    message = resp.json()["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("42", "Hmm, ñ")


def test_models_endpoints(fake: FakeOllama) -> None:
    fake.models = ["fake-llama:latest", "org/other:7b"]
    listed = httpx.get(f"{fake.url}/v1/models")
    assert listed.headers["content-type"] == "application/json"
    assert listed.content == (
        b'{"object":"list","data":[{"id":"fake-llama:latest","object":"model",'
        b'"created":1748599963,"owned_by":"fake"},{"id":"org/other:7b","object":"model",'
        b'"created":1748599963,"owned_by":"fake"}]}'
    )
    one = httpx.get(f"{fake.url}/v1/models/org%2Fother:7b").json()
    assert one == {
        "id": "org/other:7b",
        "object": "model",
        "created": 1748599963,
        "owned_by": "fake",
    }
    missing = httpx.get(f"{fake.url}/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_error_shapes(fake: FakeOllama) -> None:
    url = f"{fake.url}/v1/chat/completions"
    unknown = httpx.post(url, json={"model": "x", "messages": HI})
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, "application/json")
    assert unknown.content == (
        b'{"error":{"message":"The model `x` does not exist","type":"invalid_request_error",'
        b'"param":null,"code":"model_not_found"}}'
    )
    bad = httpx.post(url, content=b'{"model":')
    assert bad.status_code == 400
    assert list(bad.json()["error"]) == ["message", "type", "param", "code"]
    assert httpx.post(url, json={"model": DEFAULT_MODEL}).json()["error"]["param"] == "messages"
    nowhere = httpx.post(f"{fake.url}/v1/nope", json={})
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["message"] == "Invalid URL (POST /v1/nope)"


def test_api_key_is_required_when_set(fake: FakeOllama) -> None:
    fake.api_key = "sk-fake"
    url = f"{fake.url}/v1/models"
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert refused.content == (
        b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error",'
        b'"param":null,"code":"invalid_api_key"}}'
    )
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer sk-fake"}).status_code == 200
    assert httpx.get(f"{fake.url}/api/tags").status_code == 200  # Ollama's API stays open


def test_legacy_completions(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["a", "ñ"], created_at=TS, completion_id="q")
    body = {"model": DEFAULT_MODEL, "prompt": "x", "stream": True}
    with send(fake.port, "/v1/completions", body) as sock:
        chunks, _ = dechunk(read_all(sock)[1])
    head = b'data: {"id":"cmpl-q","object":"text_completion","created":1717243200,'
    head += b'"model":"fake-llama:latest","choices":[{"index":0,"text":'
    assert chunks == [
        head + b'"a","logprobs":null,"finish_reason":null}]}\n\n',
        head + '"ñ","logprobs":null,"finish_reason":null}]}\n\n'.encode(),
        head + b'"","logprobs":null,"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    whole = httpx.post(f"{fake.url}/v1/completions", json={"model": DEFAULT_MODEL, "prompt": "x"})
    assert whole.json()["object"] == "text_completion"
    assert whole.json()["choices"][0] == {
        "index": 0,
        "text": "añ",
        "logprobs": None,
        "finish_reason": "stop",
    }


# ---- the official SDK ---------------------------------------------------------------------


def test_sdk_streaming_chat(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=TOKENS)
    chunks = list(client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(TOKENS)
    assert [c.choices[0].finish_reason for c in chunks][-2:] == [None, "stop"]
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].model == DEFAULT_MODEL
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == "Bearer x"


def test_sdk_include_usage(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=TOKENS)
    chunks = list(
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(TOKENS)
    assert chunks[-1].usage.total_tokens == 26 + len(TOKENS)
    assert all(c.usage is None for c in chunks[:-1])


def test_sdk_non_streaming(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=TOKENS)
    answer = client.chat.completions.create(model="fake-llama", messages=HI)
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == "".join(TOKENS)
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == len(TOKENS)
    assert answer.system_fingerprint == "fp_fake"


def test_sdk_accumulates_streamed_tool_calls(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tool_calls=CALLS)
    with client.chat.completions.stream(model=DEFAULT_MODEL, messages=HI, tools=TOOLS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert all(isinstance(c, ChatCompletionMessageFunctionToolCall) for c in calls)
    functions = [(c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert functions == [(c["name"], c["arguments"]) for c in CALLS]
    assert len({c.id for c in calls}) == 2


def test_sdk_non_streaming_tool_calls(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tool_calls=CALLS[:1])
    message = client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, tools=TOOLS)
    assert message.choices[0].finish_reason == "tool_calls"
    assert message.choices[0].message.content is None
    (call,) = message.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert json.loads(call.function.arguments) == {"city": "Sevilla", "days": 2}


def test_sdk_reasoning_content_is_an_extra_field(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=["ok"], thinking=("a", "b"))
    chunks = list(client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True))
    extras = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks]
    assert [e for e in extras if e] == ["a", "b"]


def test_sdk_models(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.models = ["fake-llama:latest", "qwen3:0.6b"]
    assert [m.id for m in client.models.list()] == fake.models
    assert client.models.retrieve("qwen3:0.6b").owned_by == "fake"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("missing")
    assert caught.value.code == "model_not_found"


def test_sdk_embeddings_base64_and_float(fake: FakeOllama, client: openai.OpenAI) -> None:
    texts = ["hola mundo", "adiós 🦄"]
    default = client.embeddings.create(model=DEFAULT_MODEL, input=texts)
    assert fake.requests[-1].json["encoding_format"] == "base64"  # what the SDK asks for
    expected = [vectors.embedding(t) for t in texts]
    assert [d.embedding for d in default.data] == expected
    assert [d.index for d in default.data] == [0, 1]
    assert default.usage.prompt_tokens == default.usage.total_tokens == 4
    floats = client.embeddings.create(model=DEFAULT_MODEL, input=texts, encoding_format="float")
    assert [d.embedding for d in floats.data] == expected
    short = client.embeddings.create(model=DEFAULT_MODEL, input="hola mundo", dimensions=3)
    assert short.data[0].embedding == expected[0][:3]
    # The same vectors in Ollama's dialect, so tests can compare the two.
    ollama_side = httpx.post(f"{fake.url}/api/embed", json={"model": DEFAULT_MODEL, "input": texts})
    assert ollama_side.json()["embeddings"] == expected


def test_base64_is_little_endian_float32(fake: FakeOllama) -> None:
    body = {"model": DEFAULT_MODEL, "input": "x", "encoding_format": "base64"}
    data = httpx.post(f"{fake.url}/v1/embeddings", json=body).json()["data"][0]["embedding"]
    raw = base64.b64decode(data)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vectors.embedding("x")


def test_sdk_errors(fake: FakeOllama, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="nope", messages=HI)
    assert not_found.value.code == "model_not_found"

    fake.api_key = "secret"
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HI)
    assert refused.value.code == "invalid_api_key"
    fake.api_key = None

    fake.script = Script(error_line_after=2, error_message="boom")
    stream = client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True)
    with pytest.raises(openai.APIError, match="boom"):
        list(stream)

    fake.script = Script(fault="status", status=503)
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HI)
    assert failed.value.status_code == 503
    assert failed.value.body == {
        "message": "fake upstream failure",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_sdk_legacy_completions(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=["a", "b"])
    parts = list(
        client.completions.create(
            model=DEFAULT_MODEL, prompt="x", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(p.choices[0].text for p in parts if p.choices) == "ab"
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == 2
    assert client.completions.create(model=DEFAULT_MODEL, prompt="x").choices[0].text == "ab"


# ---- fault modes on /v1/chat/completions ----------------------------------------------------


def test_split_faults_cut_events_and_characters(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=TOKENS, created_at=TS, completion_id="s")
    normal, _ = chat_stream(fake)
    fake.script = Script(tokens=TOKENS, created_at=TS, completion_id="s", fault="split_lines")
    split, _ = chat_stream(fake)
    assert b"".join(split) == b"".join(normal) and len(split) == 4 * len(normal)
    assert not any(piece.endswith(b"\n\n") for piece in split)  # every event cut before its end

    fake.script = Script(tokens=TOKENS, fault="split_utf8")
    pieces, _ = chat_stream(fake)
    assert sum(1 for p in pieces if not _decodes(p)) >= 3
    chunks = list(client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(TOKENS)


def _decodes(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_close_mid_ends_without_finish_or_done(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(tokens=TOKENS, fault="close_mid", fault_after=2)
    chunks, terminated = chat_stream(fake)
    assert terminated and b"[DONE]" not in b"".join(chunks)
    assert [e["choices"][0]["finish_reason"] for e in events(chunks)] == [None, None, None]
    parts = list(client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True))
    assert len(parts) == 3


def test_reset_mid_is_a_connection_error(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script = Script(fault="reset_mid", fault_after=1, delay=0.01)
    with pytest.raises(openai.APIConnectionError):
        list(client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, stream=True))


def test_in_band_error_event(fake: FakeOllama) -> None:
    fake.script = Script(tokens=TOKENS, error_line_after=1, error_message="boom")
    chunks, terminated = chat_stream(fake)
    assert terminated
    assert chunks[-1] == b'data: {"error":{"message":"boom","type":"server_error","code":null}}\n\n'
    assert len(chunks) == 3  # role chunk, one token, the error
    fake.script = Script(error_line_after=0, error_message="boom")
    assert len(chat_stream(fake)[0]) == 2  # the role chunk is already out
    fake.script = Script(error_line_after=0, error_message="boom")
    resp = httpx.post(
        f"{fake.url}/v1/chat/completions", json={"model": "fake-llama", "messages": HI}
    )
    assert resp.status_code == 500 and resp.json()["error"]["type"] == "server_error"


def test_garbage_and_missing_newline(fake: FakeOllama) -> None:
    fake.script = Script(fault="garbage_line", fault_after=1)
    chunks, _ = chat_stream(fake)
    assert chunks[2] == b"<html>oops\n"
    fake.script = Script(fault="no_trailing_newline")
    chunks, _ = chat_stream(fake)
    assert chunks[-1] == b"data: [DONE]"


def test_status_fault_takes_a_chosen_body(fake: FakeOllama) -> None:
    fake.script = Script(
        fault="status", status=429, error_body=b"slow down", error_content_type="text/plain"
    )
    resp = httpx.post(f"{fake.url}/v1/completions", json={"model": "fake-llama", "prompt": "x"})
    assert (resp.status_code, resp.headers["content-type"], resp.content) == (
        429,
        "text/plain",
        b"slow down",
    )
    assert httpx.get(f"{fake.url}/v1/models").status_code == 200  # only generation paths


def test_stall_before_first_holds_the_role_chunk(fake: FakeOllama) -> None:
    fake.script = Script(header_delay=0.1, fault="stall_before_first", stall=0.3)
    start = time.monotonic()
    payload = {"model": DEFAULT_MODEL, "messages": HI, "stream": True}
    with send(fake.port, "/v1/chat/completions", payload) as sock:
        first = sock.recv(65536)
        got_head = time.monotonic()
        assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"\r\n\r\n")
        rest = b""
        while piece := sock.recv(65536):
            rest += piece
    assert got_head - start >= 0.1
    assert time.monotonic() - got_head >= 0.25
    assert dechunk(rest)[0][0].startswith(b'data: {"id":"chatcmpl-')


def test_created_follows_created_at(fake: FakeOllama) -> None:
    fake.script = Script(created_at=TS)
    resp = httpx.post(
        f"{fake.url}/v1/chat/completions", json={"model": "fake-llama", "messages": HI}
    )
    assert resp.json()["created"] == TS_EPOCH
