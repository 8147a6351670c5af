"""A token limit, read in one dialect and written in another: Ollama's ``num_predict`` of
-1 (no limit) or -2 (fill the context) is no limit, not a negative ``max_tokens`` that an
OpenAI or Messages server refuses; OpenAI's limits below 1 are refused as OpenAI does."""

from __future__ import annotations

import httpx
import pytest

from cortex.dialects.anthropic.upstream import request_body as messages_body
from cortex.dialects.ollama.request import chat_request
from cortex.dialects.openai.request import request_body as openai_body
from tests.conftest import RunningGateway
from tests.fakes import DEFAULT_MODEL

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("limit", [-1, -2, 0])
def test_ollamas_no_limit_is_no_limit_in_every_dialect(limit: int) -> None:
    request = chat_request({"model": "m", "messages": HI, "options": {"num_predict": limit}})
    assert "max_tokens" not in request.sampling
    body = openai_body(request)
    assert "max_tokens" not in body and "max_completion_tokens" not in body
    assert messages_body(request)["max_tokens"] >= 1  # Messages requires one: its default


def test_a_positive_limit_goes_on_as_it_is() -> None:
    request = chat_request({"model": "m", "messages": HI, "options": {"num_predict": 7}})
    assert request.sampling["max_tokens"] == 7
    assert messages_body(request)["max_tokens"] == 7


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("limit", [0, -5])
def test_an_openai_limit_below_one_is_a_400(
    gateway: RunningGateway, field: str, limit: int
) -> None:
    body = {"model": DEFAULT_MODEL, "messages": HI, field: limit}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 400
    assert field in answer.json()["error"]["message"]
