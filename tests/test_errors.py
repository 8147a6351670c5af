"""The error map: any error, rendered for a dialect before headers and for a framing after."""

from __future__ import annotations

import orjson
import pytest

from cortex.errors import (
    CortexError,
    IdleTimeout,
    ModelNotFound,
    RateLimited,
    StreamFraming,
    Unauthorized,
    UpstreamStatus,
    UpstreamUnreachable,
    dialect_of,
    in_band,
    reply,
)


def test_an_ollama_reply_is_the_status_and_a_bare_error_string() -> None:
    status, headers, body = reply(ModelNotFound('model "x" not found'), "ollama")
    assert status == 404
    assert orjson.loads(body) == {"error": 'model "x" not found'}
    assert (b"content-length", str(len(body)).encode()) in headers


def test_an_openai_reply_has_the_type_and_code_openai_gives_the_status() -> None:
    status, _, body = reply(ModelNotFound("The model `x` does not exist"), "openai")
    error = orjson.loads(body)["error"]
    assert status == 404
    assert error == {
        "message": "The model `x` does not exist",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    _, _, body = reply(IdleTimeout("no data for 30 s"), "openai")
    assert orjson.loads(body)["error"]["type"] == "server_error"


def test_a_reply_carries_retry_after_and_the_auth_challenge() -> None:
    limited = RateLimited("slow down", retry_after=7)
    _, headers, _ = reply(limited, "ollama")
    assert (b"retry-after", b"7") in headers
    _, headers, _ = reply(Unauthorized("a key is needed"), "openai")
    assert (b"www-authenticate", b'Bearer realm="cortex"') in headers


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        ("ndjson", b'{"error":"no data for 30 s"}\n'),
        ("sse", b'event: error\ndata: {"error":"no data for 30 s"}\n\n'),
    ],
)
def test_an_error_after_the_start_is_the_framings_last_frame(
    framing: StreamFraming, expected: bytes
) -> None:
    assert in_band(IdleTimeout("no data for 30 s"), framing) == expected


def test_an_openai_stream_error_is_a_data_event_with_the_errors_own_status() -> None:
    frame = in_band(IdleTimeout("no data for 30 s"), "openai-sse")
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    error = orjson.loads(frame[6:])["error"]
    assert error["message"] == "no data for 30 s"
    assert error["type"] == "server_error"


def test_only_a_backends_own_faults_are_retried_elsewhere() -> None:
    assert UpstreamUnreachable("refused").retryable
    assert IdleTimeout("stalled").retryable
    assert UpstreamStatus("runner died", status=500).retryable
    assert not UpstreamStatus("no such model", status=404).retryable
    assert not ModelNotFound("no such model").retryable
    assert not CortexError("bad").retryable


def test_the_access_log_outcome_follows_the_error() -> None:
    assert IdleTimeout("stalled").outcome == "timeout"
    assert UpstreamStatus("no such model", status=404).outcome == "upstream-error"
    assert ModelNotFound("no such model").outcome == "rejected"


def test_the_dialect_is_read_off_the_path() -> None:
    assert dialect_of("/v1/chat/completions") == "openai"
    assert dialect_of("/api/chat") == "ollama"
    assert dialect_of("/v1") == "ollama"
