"""The invariant's judge on hand-written replies: it takes a whole answer or an explicit
error in the Messages and Responses framings, and refuses anything else (so a green fault
matrix means something)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.invariant import FRAMINGS, ClientFraming, Reply, Violation, judge

SSE = {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
JSON = {"content-type": "application/json"}
FRAMING = {f.name: f for f in FRAMINGS}


def event(kind: str, **fields: Any) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"
    )


def text_delta(text: str) -> bytes:
    return event("content_block_delta", index=0, delta={"type": "text_delta", "text": text})


MESSAGE_START = event("message_start", message={"id": "msg_1", "content": []})
BLOCK = event("content_block_start", index=0, content_block={"type": "text", "text": ""})
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
END = (
    event("content_block_stop", index=0)
    + event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2})
    + event("message_stop")
)
ERROR = event("error", error={"type": "api_error", "message": "the model server broke"})


def responses(*kinds_and_fields: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(
        event(kind, sequence_number=n, **fields)
        for n, (kind, fields) in enumerate(kinds_and_fields)
    )


def response(status: str, text: str | None = "Hola mundo", **extra: Any) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text}]
    output = [{"type": "message", "content": content}]
    return {"object": "response", "status": status, "output": output, "error": None, **extra}


CREATED = ("response.created", {"response": response("in_progress", None)})
DELTAS = [
    ("response.output_text.delta", {"delta": "Hola"}),
    ("response.output_text.delta", {"delta": " mundo"}),
]
FAILED = ("response.failed", {"response": response("failed", None, error={"message": "broke"})})
ERROR_EVENT = ("error", {"code": "server_error", "message": "broke", "param": None})


def judged(name: str, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> str:
    framing: ClientFraming = FRAMING[name]
    reply = Reply(status, headers or (SSE if framing.stream else JSON), body, complete=True)
    verdict = judge(framing, reply, "Hola mundo")
    return f"{verdict.outcome}{' in band' if verdict.in_band else ''}"


@pytest.mark.parametrize(
    ("name", "body", "outcome"),
    [
        (
            "anthropic-sse",
            MESSAGE_START + BLOCK + PING + text_delta("Hola") + text_delta(" mundo") + END,
            "complete",
        ),
        ("anthropic-sse", MESSAGE_START + BLOCK + text_delta("Hola") + ERROR, "error in band"),
        ("anthropic-sse", PING + ERROR, "error in band"),
        (
            "responses-sse",
            responses(
                CREATED, *DELTAS, ("response.completed", {"response": response("completed")})
            ),
            "complete",
        ),
        (
            "responses-sse",
            responses(
                CREATED, *DELTAS, ("response.incomplete", {"response": response("incomplete")})
            ),
            "complete",
        ),
        ("responses-sse", responses(CREATED, DELTAS[0], ERROR_EVENT, FAILED), "error in band"),
        ("responses-sse", responses(CREATED, FAILED), "error in band"),
    ],
    ids=[
        "messages-whole",
        "messages-error",
        "messages-error-first",
        "responses-completed",
        "responses-incomplete",
        "responses-error-failed",
        "responses-failed",
    ],
)
def test_an_answer_or_an_explicit_error_is_judged_so(name: str, body: bytes, outcome: str) -> None:
    assert judged(name, body) == outcome


VIOLATIONS = {
    "messages-cut-short": ("anthropic-sse", MESSAGE_START + BLOCK + text_delta("Hola")),
    "messages-no-stop-reason": (
        "anthropic-sse",
        MESSAGE_START
        + BLOCK
        + text_delta("Hola mundo")
        + event("content_block_stop", index=0)
        + event("message_stop"),
    ),
    "messages-error-not-last": ("anthropic-sse", MESSAGE_START + ERROR + BLOCK),
    "messages-delta-before-start": ("anthropic-sse", text_delta("Hola mundo") + END),
    "messages-text-changed": (
        "anthropic-sse",
        MESSAGE_START + BLOCK + text_delta("Hola mund") + END,
    ),
    "messages-event-name-differs": (
        "anthropic-sse",
        MESSAGE_START + b'event: ping\ndata: {"type":"message_stop"}\n\n',
    ),
    "responses-cut-short": ("responses-sse", responses(CREATED, *DELTAS)),
    "responses-lone-error": ("responses-sse", responses(ERROR_EVENT)),
    "responses-error-without-failed": ("responses-sse", responses(CREATED, ERROR_EVENT)),
    "responses-sequence-gap": (
        "responses-sse",
        responses(CREATED, *DELTAS).replace(b'"sequence_number":2', b'"sequence_number":3'),
    ),
    "responses-output-differs": (
        "responses-sse",
        responses(
            CREATED, *DELTAS, ("response.completed", {"response": response("completed", "Hola")})
        ),
    ),
    "responses-after-completed": (
        "responses-sse",
        responses(
            CREATED, *DELTAS, ("response.completed", {"response": response("completed")}), DELTAS[0]
        ),
    ),
}


@pytest.mark.parametrize(("name", "body"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_a_stream_that_is_neither_is_a_violation(name: str, body: bytes) -> None:
    with pytest.raises(Violation):
        judged(name, body)


WHOLE = {
    "anthropic-whole": {
        "type": "message",
        "content": [{"type": "text", "text": "Hola mundo"}],
        "stop_reason": "end_turn",
    },
    "responses-whole": response("completed"),
}


@pytest.mark.parametrize("name", WHOLE)
def test_a_whole_answer_is_complete_and_a_failed_one_is_not_an_answer(name: str) -> None:
    assert judged(name, orjson.dumps(WHOLE[name])) == "complete"
    broken = (
        {**WHOLE[name], "stop_reason": None} if name == "anthropic-whole" else response("failed")
    )
    with pytest.raises(Violation):
        judged(name, orjson.dumps(broken))


@pytest.mark.parametrize(
    ("name", "body", "ok"),
    [
        ("anthropic-sse", {"type": "error", "error": {"type": "api_error", "message": "m"}}, True),
        ("anthropic-whole", {"error": {"message": "m", "type": "server_error"}}, False),
        ("responses-sse", {"error": {"message": "m", "type": "server_error"}}, True),
        ("responses-whole", {"error": "m"}, False),
    ],
)
def test_an_error_status_has_the_dialects_error_shape(name: str, body: Any, ok: bool) -> None:
    if ok:
        assert judged(name, orjson.dumps(body), status=502, headers=JSON) == "error"
    else:
        with pytest.raises(Violation):
            judged(name, orjson.dumps(body), status=502, headers=JSON)
