"""What Claude Code sends that the Anthropic codec must read its own way, one rule each."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from cortex.asks import Generation
from cortex.chat import ChatRequest, Message, ToolCall
from cortex.dialects.anthropic.codec import AnthropicCodec
from cortex.dialects.anthropic.request import chat_request
from cortex.errors import BadRequest
from cortex.events import Answer, Event, Finish, ToolEnd, ToolStart, Usage
from cortex.stream.contract import Writer
from cortex.stream.encode import SSE

BILLING = "x-anthropic-billing-header: cc_version=2.1.197.c40; cc_entrypoint=sdk-cli;"
CACHED = {"type": "ephemeral"}


def body(**fields: Any) -> dict[str, Any]:
    hi = [{"role": "user", "content": "hi"}]
    return {"model": "m", "max_tokens": 64, "messages": hi, **fields}


def writer_after(*ids: str) -> Writer:
    """The codec's writer for an answer to a conversation that already holds these calls."""
    calls = [ToolCall("Bash", {}, call_id) for call_id in ids]
    request = ChatRequest("m", [Message("user", "hi"), Message("assistant", tool_calls=calls)])
    ask = Generation(body(), None, "anthropic", "chat", True, SSE)
    return AnthropicCodec().writer(ask, request)


def written_ids(out: bytes) -> list[str]:
    starts = [
        orjson.loads(line[len(b"data: ") :])
        for line in out.split(b"\n")
        if line.startswith(b"data: ") and b"content_block_start" in line
    ]
    return [start["content_block"]["id"] for start in starts]


def test_an_upstream_call_id_already_in_the_conversation_is_replaced() -> None:
    writer = writer_after("call_00000000")
    events: list[Event] = [
        ToolStart(0, "call_00000000", "Bash"),
        ToolEnd(0),
        ToolStart(1, "call_00000001", "Bash"),
        ToolEnd(1),
        ToolStart(2, "call_00000001", "Read"),
        ToolEnd(2),
        Finish("tool_calls", Usage()),
    ]
    first, second, third = written_ids(writer.write(events))
    assert first.startswith("toolu_") and first != "call_00000000"
    assert second == "call_00000001"
    assert third.startswith("toolu_")


def test_a_whole_answer_replaces_a_repeated_call_id_too() -> None:
    writer = writer_after("call_0")
    answer = Answer()
    for event in (ToolStart(0, "call_0", "Bash"), ToolEnd(0), Finish("tool_calls", Usage())):
        answer.add(event)
    [block] = orjson.loads(writer.whole(answer))["content"]
    assert block["id"].startswith("toolu_")


def test_the_billing_block_stays_out_of_the_models_system_prompt() -> None:
    system = [
        {"type": "text", "text": BILLING},
        {"type": "text", "text": "You are a Claude agent.", "cache_control": CACHED},
        {"type": "text", "text": "Use the tools.", "cache_control": CACHED},
    ]
    [prompt, _] = chat_request(body(system=system)).messages
    assert prompt == Message("system", "You are a Claude agent.\n\nUse the tools.")
    assert chat_request(body(system=[{"type": "text", "text": BILLING}])).messages[0].role == "user"
    assert chat_request(body(system=BILLING + " said plainly")).messages[0].role == "system"


def test_a_text_document_is_read_as_text() -> None:
    text = {"type": "text", "media_type": "text/plain", "data": "hola mundo"}
    content = {"type": "content", "content": [{"type": "text", "text": "uno"}]}
    turn = [
        {"type": "document", "source": text, "title": "hello.txt"},
        {"type": "document", "source": content},
        {
            "type": "tool_result",
            "tool_use_id": "t",
            "content": [{"type": "document", "source": text}],
        },
    ]
    result, user = chat_request(body(messages=[{"role": "user", "content": turn}])).messages
    assert user.content == "hello.txt\n\nhola mundo\n\nuno"
    assert result.content == "hola mundo"


def test_a_pdf_is_refused_naming_its_block() -> None:
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}
    turn = [
        {"type": "tool_result", "tool_use_id": "t", "content": "PDF file read"},
        {"type": "document", "source": pdf},
    ]
    with pytest.raises(BadRequest) as caught:
        chat_request(body(messages=[{"role": "user", "content": turn}]))
    assert caught.value.message.startswith("messages.0.content.1.source.type: 'document'")
    assert "'base64'" in caught.value.message
