"""The fake Ollama must itself be right: byte-exact wire format and working fault modes."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator

import httpx
import ollama
import pytest

from tests.fakes import FakeOllama, Script, vectors
from tests.fakes.ollama_wire import go_json, go_str, go_time

TS = "2024-06-01T12:00:00.5Z"
DONE_METRICS = (
    b'"total_duration":415963458,"load_duration":2154458,"prompt_eval_count":26,'
    b'"prompt_eval_duration":383809000,"eval_count":2,"eval_duration":30000000}'
)
DATE = re.compile(r"Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT")


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def send(port: int, path: str, body: object) -> socket.socket:
    """POST on a fresh raw socket with `Connection: close`, so the response ends at EOF."""
    payload = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\nConnection: close\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode() + b"\r\n" + payload)
    return sock


def read_all(sock: socket.socket) -> tuple[bytes, bytes, int]:
    """Read until EOF; returns the head, the raw body and the number of recv() calls."""
    data, calls = b"", 0
    while chunk := sock.recv(65536):
        data += chunk
        calls += 1
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, calls


def dechunk(body: bytes) -> tuple[list[bytes], bool]:
    """Split a chunked body into chunk payloads; also says whether it was terminated."""
    chunks: list[bytes] = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n"
            return chunks, True
        assert rest[size : size + 2] == b"\r\n"
        chunks.append(rest[:size])
        body = rest[size + 2 :]
    return chunks, False


def stream(fake: FakeOllama, path: str = "/api/chat", **body: object) -> tuple[list[bytes], bool]:
    with send(fake.port, path, {"model": "fake-llama:latest", "messages": HI, **body}) as sock:
        head, raw, _ = read_all(sock)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    return dechunk(raw)


def test_stream_is_byte_exact(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["Hola", ' <b>&"ñ🦄\n'], created_at=TS)
    body = {"model": "fake-llama:latest", "messages": [{"role": "user", "content": "hi"}]}
    with send(fake.port, "/api/chat", body) as sock:
        head, raw, _ = read_all(sock)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert lines[1] == "Content-Type: application/x-ndjson"
    assert DATE.fullmatch(lines[2])
    assert lines[3:] == ["Connection: close", "Transfer-Encoding: chunked"]
    chunks, terminated = dechunk(raw)
    assert terminated
    prefix = b'{"model":"fake-llama:latest","created_at":"2024-06-01T12:00:00.5Z","message":'
    assert chunks == [
        prefix + b'{"role":"assistant","content":"Hola"},"done":false}\n',
        prefix
        + '{"role":"assistant","content":" \\u003cb\\u003e\\u0026\\"ñ🦄\\n"},'
        '"done":false}\n'.encode(),
        prefix
        + b'{"role":"assistant","content":""},"done_reason":"stop","done":true,'
        + DONE_METRICS
        + b"\n",
    ]
    assert raw.endswith(b"0\r\n\r\n")


def test_stream_false_is_one_json_object(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["Hola", " mundo"], created_at=TS)
    resp = httpx.post(
        f"{fake.url}/api/chat", json={"messages": HI, "model": "fake-llama", "stream": False}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert "transfer-encoding" not in resp.headers
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert resp.content == (
        b'{"model":"fake-llama","created_at":"2024-06-01T12:00:00.5Z","message":'
        b'{"role":"assistant","content":"Hola mundo"},"done_reason":"stop","done":true,'
        + DONE_METRICS
    )


def test_generate_stream(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["a", "b"], created_at=TS)
    chunks, _ = stream(fake, "/api/generate", prompt="hi")
    assert chunks[0] == (
        b'{"model":"fake-llama:latest","created_at":"2024-06-01T12:00:00.5Z",'
        b'"response":"a","done":false}\n'
    )
    last = json.loads(chunks[-1])
    assert list(last)[:6] == ["model", "created_at", "response", "done", "done_reason", "context"]
    assert last["eval_count"] == 2


def test_tags_and_version(fake: FakeOllama) -> None:
    fake.models = ["fake-llama:latest", "other:7b"]
    tags = httpx.get(f"{fake.url}/api/tags")
    assert tags.headers["content-type"] == "application/json; charset=utf-8"
    models = tags.json()["models"]
    assert [m["name"] for m in models] == ["fake-llama:latest", "other:7b"]
    assert tags.content.startswith(
        b'{"models":[{"name":"fake-llama:latest","model":"fake-llama:latest","modified_at":"'
    )
    assert b'"details":{"parent_model":"","format":"gguf","family":"llama",' in tags.content
    assert b'"families":["llama"],"parameter_size":"1B","quantization_level":"Q4_K_M"}}' in (
        tags.content
    )
    assert httpx.get(f"{fake.url}/api/version").content == b'{"version":"0.9.0"}'
    assert httpx.get(f"{fake.url}/").text == "Ollama is running"


def test_unknown_model_and_path(fake: FakeOllama) -> None:
    resp = httpx.post(f"{fake.url}/api/chat", json={"messages": HI, "model": "x"})
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.content == b'{"error":"model \\"x\\" not found, try pulling it first"}'
    resp = httpx.get(f"{fake.url}/api/nope")
    assert (resp.status_code, resp.headers["content-type"]) == (404, "text/plain")
    assert resp.content == b"404 page not found"
    assert httpx.post(f"{fake.url}/api/chat", json={"messages": HI, "model": ""}).status_code == 200


def test_requests_are_recorded(fake: FakeOllama) -> None:
    httpx.post(
        f"{fake.url}/api/chat", json={"messages": HI, "model": "fake-llama", "stream": False}
    )
    (rec,) = fake.requests
    assert (rec.method, rec.path) == ("POST", "/api/chat")
    assert rec.headers["content-type"] == "application/json"
    assert rec.json == {"messages": HI, "model": "fake-llama", "stream": False}
    assert rec.disconnected_at is None
    assert rec.bytes_written == fake.bytes_written > 0
    fake.reset()
    assert fake.requests == [] and fake.bytes_written == 0


def test_chunked_request_body(fake: FakeOllama) -> None:
    body = b'{"model":"fake-llama","stream":false}'
    head = b"POST /api/chat HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n"
    framed = (
        b"5\r\n" + body[:5] + b"\r\n" + b"%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
        sock.sendall(head + framed)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    assert fake.requests[0].body == body


def test_keep_alive_two_requests_one_connection(fake: FakeOllama) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        for _ in range(2):
            conn.request(
                "POST",
                "/api/chat",
                body=b'{"model":"fake-llama:latest","messages":[{"role":"user","content":"hi"}]}',
            )
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read().count(b"\n") == 4
    finally:
        conn.close()
    assert len(fake.requests) == 2
    assert fake.connections == 1


def test_split_lines_arrive_in_many_chunks_and_reads(fake: FakeOllama) -> None:
    fake.script = Script(created_at=TS)
    normal, _ = stream(fake)
    fake.script = Script(created_at=TS, fault="split_lines")
    with send(fake.port, "/api/chat", {"model": "fake-llama:latest", "messages": HI}) as sock:
        _, raw, calls = read_all(sock)
    chunks, terminated = dechunk(raw)
    assert terminated
    assert len(chunks) == 4 * len(normal)
    assert calls > len(normal)
    assert b"".join(chunks) == b"".join(normal)


def test_split_utf8_cuts_inside_characters(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["año", " café", " 🦄"], fault="split_utf8", created_at=TS)
    chunks, _ = stream(fake)
    undecodable = 0
    for piece in chunks:
        try:
            piece.decode()
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= 3
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line)["message"]["content"] for line in lines] == ["año", " café", " 🦄", ""]


def test_reset_mid_gives_connection_error(fake: FakeOllama) -> None:
    fake.script = Script(fault="reset_mid", fault_after=1, delay=0.01)
    with (
        send(fake.port, "/api/chat", {"model": "fake-llama:latest", "messages": HI}) as sock,
        pytest.raises(ConnectionResetError),
    ):
        read_all(sock)
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"{fake.url}/api/chat", json={"messages": HI, "model": "fake-llama:latest"})
    assert fake.requests[-1].disconnected_at is None


def test_close_mid_ends_cleanly_without_done(fake: FakeOllama) -> None:
    fake.script = Script(fault="close_mid", fault_after=2)
    chunks, terminated = stream(fake)
    assert terminated
    assert [json.loads(c)["done"] for c in chunks] == [False, False]


def test_status_fault(fake: FakeOllama) -> None:
    fake.script = Script(fault="status", status=503, error_body=b'{"error":"busy"}')
    resp = httpx.post(f"{fake.url}/api/chat", json={"messages": HI, "model": "fake-llama"})
    assert (resp.status_code, resp.content) == (503, b'{"error":"busy"}')
    assert httpx.get(f"{fake.url}/api/tags").status_code == 200  # only generation endpoints


def test_garbage_error_and_missing_newline(fake: FakeOllama) -> None:
    fake.script = Script(fault="garbage_line", fault_after=1)
    chunks, _ = stream(fake)
    assert chunks[1] == b"<html>oops\n" and len(chunks) == 5

    fake.script = Script(error_line_after=2, error_message="boom")
    chunks, terminated = stream(fake)
    assert terminated and len(chunks) == 3 and chunks[2] == b'{"error":"boom"}\n'

    fake.script = Script(fault="no_trailing_newline")
    chunks, _ = stream(fake)
    assert chunks[-1].endswith(b"}") and all(c.endswith(b"\n") for c in chunks[:-1])


def test_header_delay_and_stall_before_first(fake: FakeOllama) -> None:
    fake.script = Script(header_delay=0.2, fault="stall_before_first", stall=0.3)
    start = time.monotonic()
    with send(fake.port, "/api/chat", {"model": "fake-llama:latest", "messages": HI}) as sock:
        first = sock.recv(65536)
        got_head = time.monotonic()
        assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"\r\n\r\n")
        rest = b""
        while piece := sock.recv(65536):
            rest += piece
    assert got_head - start >= 0.2
    assert time.monotonic() - got_head >= 0.25
    assert dechunk(rest)[1]


def test_client_disconnect_is_detected_promptly(fake: FakeOllama) -> None:
    fake.script = Script(delay=0.05, count=1000)
    with send(fake.port, "/api/chat", {"model": "fake-llama:latest", "messages": HI}) as sock:
        assert sock.recv(65536)
        closed_at = time.monotonic()
    seen = fake.wait_disconnect(timeout=5)
    assert seen is not None and 0 <= seen - closed_at < 2
    assert fake.requests[-1].disconnected_at == seen
    written = fake.bytes_written
    time.sleep(0.2)
    assert fake.bytes_written == written  # generation stopped


def test_disconnect_detected_while_stalled(fake: FakeOllama) -> None:
    fake.script = Script(fault="stall_mid", fault_after=1)
    with send(fake.port, "/api/chat", {"model": "fake-llama:latest", "messages": HI}) as sock:
        sock.recv(65536)
    assert fake.wait_disconnect(timeout=5) is not None


def test_no_disconnect_for_complete_response(fake: FakeOllama) -> None:
    stream(fake)
    assert fake.wait_disconnect(timeout=0.2) is None


def test_backpressure_bounds_bytes_written(fake: FakeOllama) -> None:
    fake.script = Script(count=200_000, sndbuf=16 * 1024)
    with send(fake.port, "/api/chat", {"model": "fake-llama:latest", "messages": HI}) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        time.sleep(0.5)  # never read: the fake's drain() must block
        stuck = fake.bytes_written
        time.sleep(0.2)
        assert fake.bytes_written == stuck
        assert 0 < stuck < 2_000_000
    assert fake.wait_disconnect(timeout=5) is not None


def test_large_fast_stream(fake: FakeOllama) -> None:
    fake.script = Script(count=100_000)
    with httpx.stream(
        "POST", f"{fake.url}/api/chat", json={"messages": HI, "model": "fake-llama"}
    ) as resp:
        body = b"".join(resp.iter_bytes())
    lines = body.splitlines()
    assert len(lines) == 100_001
    assert json.loads(lines[-1])["eval_count"] == 100_000
    assert json.loads(lines[-2])["message"]["content"] == "tok99999 "
    assert fake.bytes_written == len(body)


def test_go_json_encoding() -> None:
    assert go_str('<a href="x">&\u2028\x01\x08\t') == (
        b'"\\u003ca href=\\"x\\"\\u003e\\u0026\\u2028\\u0001\\b\\t"'
    )
    assert go_json({"b": 1, "a": ["ñ"]}) == '{"b":1,"a":["ñ"]}'.encode()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", go_time())


# ---- the rest of Ollama's API ---------------------------------------------------------------

HI = [{"role": "user", "content": "hola"}]


def test_load_responses(fake: FakeOllama) -> None:
    fake.script = Script(created_at=TS)
    chat = httpx.post(f"{fake.url}/api/chat", json={"model": "fake-llama", "messages": []})
    assert chat.headers["content-type"] == "application/json; charset=utf-8"
    assert chat.content == (
        b'{"model":"fake-llama","created_at":"2024-06-01T12:00:00.5Z","message":'
        b'{"role":"assistant","content":""},"done_reason":"load","done":true}'
    )
    generate = httpx.post(f"{fake.url}/api/generate", json={"model": "fake-llama", "prompt": ""})
    assert generate.content == (
        b'{"model":"fake-llama","created_at":"2024-06-01T12:00:00.5Z","response":"",'
        b'"done":true,"done_reason":"load"}'
    )
    unload = {"model": "fake-llama", "keep_alive": 0}
    assert httpx.post(f"{fake.url}/api/generate", json=unload).json()["done_reason"] == "unload"
    unload |= {"messages": [], "keep_alive": "0s"}
    assert httpx.post(f"{fake.url}/api/chat", json=unload).json()["done_reason"] == "unload"


def test_generate_records_options_and_answers_whole(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["a", "b"], created_at=TS)
    body = {"model": "fake-llama", "prompt": "hi", "system": "be brief", "raw": True}
    resp = httpx.post(f"{fake.url}/api/generate", json={**body, "stream": False})
    assert resp.json()["response"] == "ab" and resp.json()["done"] is True
    assert fake.requests[-1].json == {**body, "stream": False}


def test_num_predict_stops_with_length(fake: FakeOllama) -> None:
    fake.script = Script(count=5)
    chunks, _ = stream(fake, messages=HI, options={"num_predict": 2})
    lines = [json.loads(c) for c in chunks]
    assert [line["message"]["content"] for line in lines] == ["tok0 ", "tok1 ", ""]
    assert (lines[-1]["done_reason"], lines[-1]["eval_count"]) == ("length", 2)


def test_thinking_and_tool_call_lines_are_byte_exact(fake: FakeOllama) -> None:
    call = {"name": "get_weather", "arguments": {"days": 2, "city": "<Sevilla>"}}
    fake.script = Script(created_at=TS, thinking=("Hm", "m"), tool_calls=(call,))
    chunks, _ = stream(fake, messages=HI)
    prefix = b'{"model":"fake-llama:latest","created_at":"2024-06-01T12:00:00.5Z","message":'
    assert chunks[:3] == [
        prefix + b'{"role":"assistant","content":"","thinking":"Hm"},"done":false}\n',
        prefix + b'{"role":"assistant","content":"","thinking":"m"},"done":false}\n',
        prefix + b'{"role":"assistant","content":"","tool_calls":[{"id":"call_00000000",'
        b'"function":{"index":0,"name":"get_weather","arguments":{"city":"\\u003cSevilla\\u003e",'
        b'"days":2}}}]},"done":false}\n',
    ]
    final = json.loads(chunks[3])
    assert (final["done"], final["done_reason"], final["eval_count"]) == (True, "stop", 3)
    whole = httpx.post(
        f"{fake.url}/api/chat", json={"messages": HI, "model": "fake-llama", "stream": False}
    )
    message = whole.json()["message"]
    assert list(message) == ["role", "content", "thinking", "tool_calls"]
    assert message["thinking"] == "Hmm"
    assert message["tool_calls"][0]["function"] == {"index": 0, **call}


def test_embed_show_and_ps_errors(fake: FakeOllama) -> None:
    missing = httpx.post(f"{fake.url}/api/show", json={"model": "x"})
    assert (missing.status_code, missing.content) == (404, b'{"error":"model \'x\' not found"}')
    embed = httpx.post(f"{fake.url}/api/embed", json={"model": "x", "input": "a"})
    assert embed.status_code == 404 and b"try pulling it first" in embed.content
    bad = httpx.post(f"{fake.url}/api/embed", json={"model": "fake-llama", "input": [1]})
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid input type"})
    empty = httpx.post(f"{fake.url}/api/embed", json={"model": "fake-llama", "input": []})
    assert empty.content == b'{"model":"fake-llama","embeddings":[]}'
    legacy = httpx.post(f"{fake.url}/api/embeddings", json={"model": "fake-llama", "prompt": ""})
    assert legacy.content == b'{"embedding":[]}'


def test_ollama_client_chat_stream(fake: FakeOllama) -> None:
    fake.script = Script(tokens=["Hola", " 🦄"], thinking=("hm",))
    with ollama.Client(host=fake.url) as client:
        parts = list(client.chat(model="fake-llama", messages=HI, stream=True))
    assert [p.message.thinking for p in parts] == ["hm", None, None, None]
    assert "".join(p.message.content or "" for p in parts) == "Hola 🦄"
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count == 3


def test_ollama_client_tool_calls(fake: FakeOllama) -> None:
    fake.script = Script(tool_calls=({"name": "f", "arguments": {"b": [1], "a": "ñ"}},))
    with ollama.Client(host=fake.url) as client:
        answer = client.chat(model="fake-llama", messages=HI, tools=[])
    (call,) = answer.message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("f", {"a": "ñ", "b": [1]})


def test_ollama_client_embed_show_ps_list(fake: FakeOllama) -> None:
    fake.models = ["fake-llama:latest", "nomic-embed-text:latest"]
    with ollama.Client(host=fake.url) as client:
        assert [m.model for m in client.list().models] == fake.models
        assert client.ps().models == []
        embedded = client.embed(model="nomic-embed-text", input=["hola mundo", "adiós"])
        assert embedded.embeddings == [vectors.embedding("hola mundo"), vectors.embedding("adiós")]
        assert embedded.prompt_eval_count == 3
        short = client.embed(model="nomic-embed-text", input="x", dimensions=2)
        assert short.embeddings == [vectors.embedding("x")[:2]]
        legacy = client.embeddings(model="nomic-embed-text", prompt="hola mundo")
        assert list(legacy.embedding) == vectors.embedding("hola mundo")

        shown = client.show("fake-llama")
        assert shown.details is not None and shown.details.family == "llama"
        assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 131072
        assert shown.capabilities == ["completion", "tools"]
        assert shown.template and shown.parameters and shown.license and shown.modelfile
        with pytest.raises(ollama.ResponseError) as caught:
            client.show("missing")
        assert caught.value.status_code == 404

        client.chat(model="fake-llama", messages=HI)
        running = client.ps().models
        assert [m.name for m in running] == ["fake-llama:latest", "nomic-embed-text:latest"]
        assert running[0].size_vram == running[0].size and running[0].context_length == 4096
        assert running[0].expires_at is not None
        client.generate(model="nomic-embed-text", prompt="", keep_alive=0)
        assert [m.name for m in client.ps().models] == ["fake-llama:latest"]
    fake.reset()
    assert httpx.get(f"{fake.url}/api/ps").content == b'{"models":[]}'
