"""Upstream faults reach the client as explicit errors, with a faithful status or in-band."""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import open_raw_stream, parsed, post_chat, read_until, stream_lines

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}


def assert_ollama_error(body: bytes, *fragments: str) -> str:
    error = orjson.loads(body)
    assert set(error) == {"error"}
    assert isinstance(error["error"], str)
    for fragment in fragments:
        assert fragment in error["error"]
    return str(error["error"])


@pytest.mark.parametrize("fault", ["close_mid", "reset_mid", "stall_mid", "garbage_line"])
@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/event-stream"])
def test_a_broken_answer_ends_with_an_explicit_error_not_a_quiet_end(
    fault: str, accept: str, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(idle_timeout=0.5)
    fake.script = Script(tokens=["uno", " dos", " tres"], fault=fault, fault_after=1)  # type: ignore[arg-type]
    response = post_chat(gateway.url, HELLO, headers={"Accept": accept})
    assert response.status_code == 200
    if accept == "text/event-stream":
        events = response.text.strip().split("\n\n")
        assert events[0].startswith("data: ")
        assert events[-1].startswith("event: error\ndata: ")
        assert_ollama_error(events[-1].split("data: ", 1)[1].encode())
        assert not any('"done":true' in e for e in events)
    else:
        lines = response.content.splitlines()
        assert orjson.loads(lines[0])["message"]["content"] == "uno"
        assert_ollama_error(lines[-1])
        assert all(orjson.loads(line).get("done") is not True for line in lines)


def test_idle_timeout_names_the_silence(fake: FakeOllama, start_gateway: StartGateway) -> None:
    gateway = start_gateway(idle_timeout=0.5)
    fake.script = Script(fault="stall_mid", fault_after=2)
    response = post_chat(gateway.url, HELLO)
    assert_ollama_error(response.content.splitlines()[-1], "went silent for 0.5 s")


@pytest.mark.parametrize("kind", ["ollama", "openai"])
@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions"])
def test_a_silence_after_the_first_token_is_reported_after_the_idle_timeout(
    kind: str, path: str, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    """Not at the far longer first-byte deadline, on every pair of dialects."""
    upstream = ("openai+" if kind == "openai" else "") + fake.url
    gateway = start_gateway(upstream=upstream, idle_timeout=0.5, first_byte_timeout=30)
    fake.script = Script(tokens=["uno", " dos", " tres"], fault="stall_mid", fault_after=1)
    began = time.monotonic()
    response = httpx.post(gateway.url + path, json={**HELLO, "stream": True}, timeout=40)
    elapsed = time.monotonic() - began
    assert response.status_code == 200
    assert "went silent for 0.5 s" in response.text
    assert elapsed < 15, f"the silence was reported after {elapsed:.1f} s"


def test_upstream_mid_stream_error_line_is_forwarded(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=["a", "b", "c"], error_line_after=1)
    response, lines = stream_lines(gateway.url, HELLO)
    assert response.status_code == 200
    messages = parsed(lines)
    assert messages[0]["message"]["content"] == "a"
    assert "error" in messages[-1]


def test_stall_before_first_byte_is_a_504(fake: FakeOllama, start_gateway: StartGateway) -> None:
    gateway = start_gateway(first_byte_timeout=0.5)
    fake.script = Script(fault="stall_before_first")
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == 504
    assert_ollama_error(response.content, "0.5 s")


def test_slow_headers_beyond_the_first_byte_timeout_are_a_504(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(first_byte_timeout=0.5)
    fake.script = Script(header_delay=2)
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == 504
    assert_ollama_error(response.content, "did not answer within 0.5 s")


def test_slow_headers_within_the_timeout_are_fine(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(first_byte_timeout=3)
    fake.script = Script(header_delay=0.5)
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == 200
    assert orjson.loads(response.content.splitlines()[-1])["done"] is True


def test_unknown_model_is_a_404_with_ollamas_message(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    response = post_chat(gateway.url, {**HELLO, "model": "nope:1b"})
    assert response.status_code == 404
    assert_ollama_error(response.content, 'model "nope:1b" not found')


@pytest.mark.parametrize("status", [400, 500, 503])
def test_upstream_error_statuses_are_passed_on(
    status: int, fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(fault="status", status=status, error_body=b'{"error":"it broke"}')
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == status
    assert orjson.loads(response.content) == {"error": "it broke"}


def test_upstream_error_status_without_json_body_still_says_what_happened(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(
        fault="status", status=502, error_body=b"", error_content_type="text/plain"
    )
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == 502
    assert_ollama_error(response.content, "HTTP 502")


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_a_502_without_the_address(start_gateway: StartGateway) -> None:
    port = unused_port()
    gateway = start_gateway(upstream=f"http://127.0.0.1:{port}")
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == 502
    message = assert_ollama_error(response.content, "cannot reach the model server")
    assert str(port) not in message


def test_dns_failure_is_a_502(start_gateway: StartGateway) -> None:
    gateway = start_gateway(upstream="http://no-such-host.invalid:11434")
    response = post_chat(gateway.url, HELLO)
    assert response.status_code == 502
    message = assert_ollama_error(response.content, "does not resolve")
    assert "no-such-host" not in message


def test_client_disconnect_closes_the_upstream_request(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(count=10_000, delay=0.02)
    sock = open_raw_stream(gateway.host, gateway.port, HELLO)
    assert b"tok1 " in read_until(sock, b"tok1 ")
    sock.close()
    closed_at = time.monotonic()
    disconnected = fake.wait_disconnect(timeout=5)
    assert disconnected is not None, "the upstream request was left running"
    assert disconnected - closed_at < 1.0
    assert fake.requests[-1].bytes_written < 10_000 * 50


def test_client_disconnect_while_waiting_for_the_first_byte_closes_the_upstream(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(fault="stall_before_first")
    sock = open_raw_stream(gateway.host, gateway.port, HELLO)
    assert fake.wait_requests(1)
    time.sleep(0.1)
    sock.close()
    assert fake.wait_disconnect(timeout=5) is not None


def test_a_client_that_does_not_read_holds_back_the_upstream(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(count=300_000, sndbuf=16_384)
    sock = open_raw_stream(gateway.host, gateway.port, HELLO, rcvbuf=16_384)
    total = 300_000 * 100
    held_back = -1
    for _ in range(40):
        time.sleep(0.25)
        if fake.bytes_written == held_back:
            break
        held_back = fake.bytes_written
    assert fake.bytes_written == held_back, (
        "the upstream kept flowing to a client that reads nothing"
    )
    # What is in flight is the sockets' buffers along the way, not a growing queue.
    assert 0 < held_back < 2 * 1024 * 1024 < total
    sock.close()
    assert fake.wait_disconnect(timeout=5) is not None
