"""The relay below ASGI (stream/push.py), end to end: which path a stream takes, and
that what it writes straight to the client's connection is what the ASGI path would."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.conftest import RunningGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import post_chat

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}
TOKENS = ["Había", " una", " vez", " 🦄", " <ñ>"]


def test_a_started_ollama_stream_is_written_below_asgi_byte_for_byte(
    fake: FakeOllama, gateway: RunningGateway, direct_calls: list[str]
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.01, created_at="2024-06-01T10:00:00Z")
    direct = post_chat(fake.url, HELLO)
    relayed = post_chat(gateway.url, HELLO)
    assert relayed.status_code == 200
    assert relayed.content == direct.content
    assert direct_calls == ["ClientConduit"]


def test_server_sent_events_and_translated_streams_are_written_below_asgi(
    fake: FakeOllama, gateway: RunningGateway, direct_calls: list[str]
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.01)
    sse = post_chat(gateway.url, HELLO, headers={"Accept": "text/event-stream"})
    events = [e for e in sse.text.split("\n\n") if e]
    contents = [orjson.loads(e.removeprefix("data: "))["message"]["content"] for e in events]
    assert "".join(contents) == "".join(TOKENS)

    openai = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**HELLO, "stream": True}, timeout=10
    )
    chunks: list[dict[str, Any]] = [
        orjson.loads(e.removeprefix("data: "))
        for e in openai.text.split("\n\n")
        if e and e != "data: [DONE]"
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(TOKENS)
    assert openai.text.endswith("data: [DONE]\n\n")
    assert direct_calls == ["ClientConduit", "ClientConduit"]


def test_an_answer_whole_before_the_response_starts_needs_no_direct_writes(
    fake: FakeOllama, gateway: RunningGateway, direct_calls: list[str]
) -> None:
    fake.script = Script(tokens=TOKENS)  # no delay: the whole answer comes in one read
    relayed = post_chat(gateway.url, HELLO)
    lines = [orjson.loads(line) for line in relayed.content.splitlines()]
    assert "".join(m["message"]["content"] for m in lines) == "".join(TOKENS)
    assert lines[-1]["done"] is True
    assert len(direct_calls) <= 1  # handed over or not, nothing is lost or repeated


def test_a_failure_after_direct_writes_is_the_last_line_in_band(
    fake: FakeOllama, gateway: RunningGateway, direct_calls: list[str]
) -> None:
    fake.script = Script(tokens=TOKENS, delay=0.02, fault="reset_mid", fault_after=3)
    relayed = post_chat(gateway.url, HELLO)
    lines = [orjson.loads(line) for line in relayed.content.splitlines()]
    assert [m["message"]["content"] for m in lines[:-1]] == TOKENS[:3]
    assert "error" in lines[-1]
    assert direct_calls == ["ClientConduit"]


def test_a_long_answer_sent_without_pause_arrives_whole_in_slices(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    # Hundreds of kilobytes at once: reads far bigger than a slice (stream/slices.py), so
    # the relay hands them on over many turns; nothing may be lost, doubled or reordered.
    tokens = [f" {i}ñ" for i in range(6000)]
    fake.script = Script(tokens=tokens)
    relayed = post_chat(gateway.url, HELLO)
    assert len(relayed.content) > 4 * 16 * 1024
    lines = [orjson.loads(line) for line in relayed.content.splitlines()]
    assert [m["message"]["content"] for m in lines[:-1]] == tokens
    assert lines[-1]["done"] is True

    openai = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={**HELLO, "stream": True}, timeout=30
    )
    events = [e for e in openai.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert [p for p in pieces if p] == tokens
    assert chunks[-1]["choices"] == [] or chunks[-1]["choices"][0]["finish_reason"] == "stop"
