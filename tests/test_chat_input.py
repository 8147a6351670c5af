"""Bad input gets a clear 4xx in Ollama's error shape; nothing reaches the upstream."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama


def post_raw(gateway: RunningGateway, body: bytes, **kwargs: object) -> httpx.Response:
    return httpx.post(gateway.url + "/api/chat", content=body, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"messages": "hola"}', "messages: Input should be a valid list"),
        (b'{"messages": [{"content": "hola"}]}', "messages.0.role: Field required"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages.0.content"),
        (b'{"messages": [], "stream": "yes"}', "stream"),
        (b'{"messages": [], "model": 7}', "model"),
        (b"\xff\xfe{}", "not valid JSON: it is not UTF-8 (invalid start byte) at byte 0"),
        (b'{"messages": "ab\xe9"}', "not UTF-8 (invalid continuation byte) at byte 16"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
)
def test_bad_request_is_a_400_that_says_what_is_wrong(
    body: bytes, fragment: str, fake: FakeOllama, gateway: RunningGateway
) -> None:
    response = post_raw(gateway, body)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"error"}
    assert fragment in error["error"]
    assert "Traceback" not in response.text
    assert not [r for r in fake.requests if r.path == "/api/chat"]


def test_an_escaped_lone_surrogate_is_read_as_ollama_reads_it(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    """Valid JSON that names no character (``\\ud800`` alone): Ollama's decoder makes it
    U+FFFD, and so does Córtex, instead of refusing the body."""
    body = (
        b'{"model": "%s", "messages": [{"role": "user", "content": "x\\ud800y \\ud83d\\ude00"}]}'
        % DEFAULT_MODEL.encode()
    )
    response = post_raw(gateway, body)
    assert response.status_code == 200
    [sent] = [r for r in fake.requests if r.path == "/api/chat"]
    assert sent.json["messages"][0]["content"] == "x\ufffdy \U0001f600"
    nested = b'{"messages": [{"role": "user", "content": "\\udc00"}], "x": ' + b"[" * 5000
    assert post_raw(gateway, nested + b"]" * 5000 + b"}").status_code == 400
    # what orjson refuses stays refused when an escape takes the body down this path
    for refused in (b"NaN", b"Infinity", b"1e400", b"1" + b"0" * 400):
        body = b'{"messages": [{"role": "user", "content": "\\u00e9"}], "n": %s}' % refused
        answer = post_raw(gateway, body)
        assert answer.status_code == 400, (refused, answer.text)
        assert "not valid JSON" in answer.json()["error"]
    big = b'{"model": "%s", "messages": [{"role": "user", "content": "\\ud800"}], "n": %d}'
    assert post_raw(gateway, big % (DEFAULT_MODEL.encode(), 2**64)).status_code == 200  # a double


def test_body_over_the_limit_is_a_413(fake: FakeOllama, start_gateway: StartGateway) -> None:
    gateway = start_gateway(max_body_bytes=1000)
    body = orjson.dumps({"messages": [{"role": "user", "content": "x" * 2000}]})
    response = post_raw(gateway, body)
    assert response.status_code == 413
    assert "1000-byte limit" in response.json()["error"]
    assert not fake.requests


def test_body_over_the_limit_without_content_length_is_a_413(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(max_body_bytes=1000)

    def chunks() -> object:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}]}'

    response = httpx.post(gateway.url + "/api/chat", content=chunks(), timeout=10)  # type: ignore[arg-type]
    assert response.status_code == 413
    assert not fake.requests


def test_empty_messages_are_relayed_for_model_preloading(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    response = post_raw(gateway, b'{"model": "fake-llama:latest", "messages": []}')
    assert response.status_code == 200
    assert fake.requests[-1].json["messages"] == []


def test_unknown_route_and_method_are_json_errors(gateway: RunningGateway) -> None:
    missing = httpx.get(gateway.url + "/api/nothing")
    assert missing.status_code == 404
    assert "error" in missing.json()
    wrong_method = httpx.get(gateway.url + "/api/chat")
    assert wrong_method.status_code == 405
    assert "error" in wrong_method.json()
    assert "POST" in wrong_method.headers["allow"]


def test_a_large_body_in_one_write_is_not_mistaken_for_a_large_head(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    content = "x" * (5 * 1024 * 1024)
    body = orjson.dumps(
        {"model": "fake-llama:latest", "messages": [{"role": "user", "content": content}]}
    )
    response = post_raw(gateway, body)
    assert response.status_code == 200
    assert len(fake.requests[-1].body) == len(body)
