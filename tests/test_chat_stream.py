"""/api/chat end to end: Córtex on a real port in front of the fake Ollama."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import parsed, post_chat, stream_lines

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}
FIXED = "2024-06-01T10:00:00.000000Z"


def test_stream_is_byte_identical_to_the_upstream(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=["Había", " una", " vez", " 🦄", " <ñ>"], created_at=FIXED)
    direct = post_chat(fake.url, HELLO)
    relayed = post_chat(gateway.url, HELLO)
    assert relayed.status_code == 200
    assert relayed.headers["content-type"] == "application/x-ndjson"
    assert relayed.content == direct.content
    assert parsed([(0, line) for line in relayed.content.splitlines()])[-1]["done"] is True


def test_tokens_reach_the_client_as_the_model_produces_them(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=["uno", " dos", " tres", " cuatro"], delay=0.25)
    response, lines = stream_lines(gateway.url, HELLO)
    assert response.status_code == 200
    arrivals = [at for at, _ in lines]
    # Buffering would deliver every line at once; streaming spreads them over the delays.
    assert arrivals[-1] - arrivals[0] > 0.5
    assert [m["message"]["content"] for m in parsed(lines)[:-1]] == [
        "uno",
        " dos",
        " tres",
        " cuatro",
    ]


@pytest.mark.parametrize("fault", ["split_lines", "split_utf8"])
def test_lines_and_characters_cut_by_the_network_arrive_intact(
    fault: str, fake: FakeOllama, gateway: RunningGateway
) -> None:
    tokens = ["Ñandú", " 🦄 ", "crème", " brûlée", " 日本"]
    fake.script = Script(tokens=tokens, fault=fault)  # type: ignore[arg-type]
    response, lines = stream_lines(gateway.url, HELLO)
    assert response.status_code == 200
    messages = parsed(lines)
    assert "".join(m["message"]["content"] for m in messages) == "".join(tokens)
    assert messages[-1]["done"] is True
    assert len(fake.requests) == 1


def test_missing_model_uses_the_upstreams_first_model(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.models = ["first:latest", "second:latest"]
    response = post_chat(gateway.url, {"messages": [{"role": "user", "content": "hola"}]})
    assert response.status_code == 200
    chat_requests = [r for r in fake.requests if r.path == "/api/chat"]
    assert chat_requests[-1].json["model"] == "first:latest"


def test_missing_model_uses_the_configured_default(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = ["first:latest", "mine:7b"]
    gateway = start_gateway(default_model="mine:7b")
    response = post_chat(gateway.url, {"messages": [{"role": "user", "content": "hola"}]})
    assert response.status_code == 200
    assert fake.requests[-1].json["model"] == "mine:7b"
    assert all(r.path != "/api/tags" for r in fake.requests)


def test_request_fields_are_passed_through_untouched(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    payload = {
        **HELLO,
        "format": {"type": "object", "properties": {"a": {"type": "string"}}},
        "options": {"temperature": 0.2, "num_ctx": 4096, "seed": 7},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "keep_alive": "5m",
        "think": False,
        "some_future_field": [1, 2],
    }
    raw = orjson.dumps(payload)
    httpx.post(gateway.url + "/api/chat", content=raw, timeout=10)
    assert fake.requests[-1].body == raw


def test_stream_false_returns_one_json_object(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(tokens=["Una", " tortilla"])
    response = post_chat(gateway.url, {**HELLO, "stream": False})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["message"]["content"] == "Una tortilla"
    assert answer["done"] is True


def test_accept_event_stream_gives_server_sent_events(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    fake.script = Script(tokens=["piratas", "!"], created_at=FIXED)
    direct = post_chat(fake.url, HELLO).content.splitlines()
    response = post_chat(gateway.url, HELLO, headers={"Accept": "text/event-stream"})
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.content == b"".join(b"data: " + line + b"\n\n" for line in direct)


def test_sse_heartbeat_while_the_model_is_silent(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(heartbeat_interval=0.2)
    fake.script = Script(tokens=["a", "b"], delay=0.7)
    response = post_chat(gateway.url, HELLO, headers={"Accept": "text/event-stream"})
    events = response.text.split("\n\n")
    assert ": ping" in events
    data = [e for e in events if e.startswith("data: ")]
    assert orjson.loads(data[-1][6:])["done"] is True
