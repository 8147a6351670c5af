"""Input items of the Responses API whose fields have the wrong type are the client's
400, never a 500: they were read as dictionary keys (found by fuzzing)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway
from tests.fakes import DEFAULT_MODEL

CALL = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}


@pytest.mark.parametrize(
    "items",
    [
        [{"type": []}],
        [{"type": {"a": 1}, "role": "user", "content": "hi"}],
        [{"role": {}}],
        [{"role": ["user"], "content": "hi"}],
        [CALL, {"type": "function_call_output", "call_id": [], "output": "o"}],
        [{"type": "message", "role": "user", "content": "hi", "id": []}],
        [CALL, {"type": "function_call_output", "call_id": "c", "output": "o", "id": {}}],
        [{"type": "item_reference", "id": ["msg_1"]}],
    ],
    ids=lambda items: repr(items[-1])[:40],
)
@pytest.mark.parametrize("stream", [False, True])
def test_an_input_item_with_a_field_of_the_wrong_type_is_a_400(
    gateway: RunningGateway, items: list[dict[str, Any]], stream: bool
) -> None:
    body = {"model": DEFAULT_MODEL, "input": items, "stream": stream}
    answer = httpx.post(gateway.url + "/v1/responses", json=body, timeout=10)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "internal" not in error["message"]
