"""Córtex as an Ollama in front of many servers: discovery, model management, conformance."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import orjson
import pytest

from cortex import __version__
from cortex.access.keys import generate_key, hash_key
from cortex.config import OLLAMA_VERSION
from tests.conftest import StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama

PROPS = {
    "default_generation_settings": {"n_ctx": 8192, "params": {}},
    "modalities": {"vision": True, "audio": False},
    "chat_template_caps": {"supports_tools": True, "supports_tool_calls": True},
}


@pytest.fixture
def second() -> Iterator[FakeOllama]:
    with FakeOllama(models=["other:7b"]) as server:
        yield server


def test_version_is_the_lowest_of_the_ollama_backends(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.version, second.version = "0.12.10", "0.9.2"
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}])
    answer = httpx.get(gateway.url + "/api/version")
    assert answer.json() == {"version": "0.9.2"}
    assert answer.headers["x-cortex-version"] == __version__


def test_version_without_an_ollama_is_the_configured_one(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(upstream="openai+" + fake.url)
    assert httpx.get(gateway.url + "/api/version").json() == {"version": OLLAMA_VERSION}
    gateway = start_gateway(upstream="openai+" + fake.url, ollama_version="0.7.0")
    assert httpx.get(gateway.url + "/api/version").json() == {"version": "0.7.0"}


def test_show_on_llama_server_tells_context_and_capabilities(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.props = orjson.dumps(PROPS)
    gateway = start_gateway(upstream="openai+" + fake.url)
    shown = httpx.post(gateway.url + "/api/show", json={"model": DEFAULT_MODEL}).json()
    assert shown["capabilities"] == ["completion", "tools", "vision"]
    arch = shown["model_info"]["general.architecture"]
    assert shown["model_info"][f"{arch}.context_length"] == 8192
    assert ".Suffix" not in shown["template"]
    tags = httpx.get(gateway.url + "/api/tags").json()["models"]
    assert tags[0]["capabilities"] == ["completion", "tools", "vision"]


def test_show_on_vllm_tells_its_max_model_len_and_claims_nothing_more(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.max_model_len = 32768
    gateway = start_gateway(upstream="openai+" + fake.url)
    shown = httpx.post(gateway.url + "/api/show", json={"model": DEFAULT_MODEL}).json()
    assert shown["capabilities"] == ["completion"]
    assert shown["model_info"]["unknown.context_length"] == 32768
    assert "capabilities" not in httpx.get(gateway.url + "/api/tags").json()["models"][0]


def test_ps_merges_every_backend_with_context_lengths(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    second.max_model_len = 4096
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": "openai+" + second.url}])
    body = {"model": DEFAULT_MODEL, "prompt": "hi", "stream": False}
    assert httpx.post(gateway.url + "/api/generate", json=body).status_code == 200
    models = {m["name"]: m for m in httpx.get(gateway.url + "/api/ps").json()["models"]}
    assert set(models) == {DEFAULT_MODEL, "other:7b"}
    assert models["other:7b"]["context_length"] == 4096


def test_pull_streams_ollama_progress_to_the_routed_backend(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}])
    with httpx.stream("POST", gateway.url + "/api/pull", json={"model": "new:1b"}) as answer:
        assert answer.headers["content-type"] == "application/x-ndjson"
        lines = [orjson.loads(line) for line in answer.iter_lines() if line]
    assert lines[0] == {"status": "pulling manifest"}
    assert {"digest", "total", "completed"} <= set(lines[1])
    assert lines[-1] == {"status": "success"}
    pulled = [s for s in (fake, second) if "new:1b" in s.models]
    assert len(pulled) == 1
    names = [m["name"] for m in httpx.get(gateway.url + "/api/tags").json()["models"]]
    assert "new:1b" in names  # the catalogue was read again


def test_pull_to_all_ends_once_after_every_backend(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}], pull_to="all")
    answer = httpx.post(gateway.url + "/api/pull", json={"model": "new:1b"})
    statuses = [orjson.loads(line)["status"] for line in answer.text.splitlines()]
    assert statuses.count("success") == 1 and statuses[-1] == "success"
    assert statuses.count("pulling manifest") == 2
    assert "new:1b" in fake.models and "new:1b" in second.models


def test_pull_without_a_stream_is_one_object(fake: FakeOllama, start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    answer = httpx.post(gateway.url + "/api/pull", json={"model": "new:1b", "stream": False})
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.json() == {"status": "success"}
    fake.admin_failure = "pull model manifest: file does not exist"
    failed = httpx.post(gateway.url + "/api/pull", json={"model": "nope", "stream": False})
    assert failed.status_code == 500
    assert "file does not exist" in failed.json()["error"]


def test_a_failed_pull_ends_with_an_error_line(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.admin_failure = "pull model manifest: file does not exist"
    answer = httpx.post(start_gateway().url + "/api/pull", json={"model": "nope"})
    last = orjson.loads(answer.text.splitlines()[-1])
    assert "file does not exist" in last["error"]


def test_a_client_that_hangs_up_stops_the_pull(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.progress_delay = 0.5
    gateway = start_gateway()
    with httpx.stream("POST", gateway.url + "/api/pull", json={"model": "slow:1b"}) as answer:
        next(answer.iter_lines())
    assert fake.wait_disconnect(timeout=5) is not None


def test_copy_and_delete_reach_every_holder(
    fake: FakeOllama, second: FakeOllama, start_gateway: StartGateway
) -> None:
    second.models.append(DEFAULT_MODEL)
    gateway = start_gateway(backends=[{"url": fake.url}, {"url": second.url}])
    httpx.get(gateway.url + "/api/tags")
    copied = httpx.post(
        gateway.url + "/api/copy", json={"source": DEFAULT_MODEL, "destination": "mine:1"}
    )
    assert copied.status_code == 200 and copied.content == b""
    assert "mine:1" in fake.models and "mine:1" in second.models
    deleted = httpx.request("DELETE", gateway.url + "/api/delete", json={"model": "mine:1"})
    assert deleted.status_code == 200
    assert "mine:1" not in fake.models + second.models
    gone = httpx.request("DELETE", gateway.url + "/api/delete", json={"model": "mine:1"})
    assert gone.status_code == 404


def test_blobs_then_create(fake: FakeOllama, start_gateway: StartGateway) -> None:
    gateway = start_gateway()
    blob = b"GGUF fake weights"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert httpx.head(gateway.url + f"/api/blobs/{digest}").status_code == 404
    assert httpx.post(gateway.url + f"/api/blobs/{digest}", content=blob).status_code == 201
    assert httpx.head(gateway.url + f"/api/blobs/{digest}").status_code == 200
    body = {"model": "made:1", "files": {"model.gguf": digest}, "stream": False}
    assert httpx.post(gateway.url + "/api/create", json=body).json() == {"status": "success"}
    assert "made:1" in fake.models


def test_push_goes_to_a_holder(fake: FakeOllama, start_gateway: StartGateway) -> None:
    answer = httpx.post(start_gateway().url + "/api/push", json={"model": DEFAULT_MODEL})
    assert orjson.loads(answer.text.splitlines()[-1]) == {"status": "success"}
    assert any(r.path == "/api/push" for r in fake.requests)


def test_management_needs_an_admin_key(fake: FakeOllama, start_gateway: StartGateway) -> None:
    user, admin = generate_key(), generate_key()
    gateway = start_gateway(
        keys=[
            {"name": "user", "key_hash": hash_key(user), "models": [DEFAULT_MODEL]},
            {"name": "admin", "key_hash": hash_key(admin), "admin": True},
        ]
    )
    body = {"model": "new:1b", "stream": False}
    refused = httpx.post(
        gateway.url + "/api/pull", json=body, headers={"Authorization": f"Bearer {user}"}
    )
    assert refused.status_code == 403 and "error" in refused.json()
    allowed = httpx.post(
        gateway.url + "/api/pull", json=body, headers={"Authorization": f"Bearer {admin}"}
    )
    assert allowed.json() == {"status": "success"}
    fake.models.append("hidden:1")
    shown = httpx.get(gateway.url + "/cortex/backends", headers={"Authorization": f"Bearer {user}"})
    assert shown.json()["backends"][0]["models"] == [DEFAULT_MODEL]


@pytest.mark.parametrize("messages", [None, []])
def test_a_chat_without_messages_is_a_load_answered_as_json(
    fake: FakeOllama, start_gateway: StartGateway, messages: object
) -> None:
    body: dict[str, object] = {"model": DEFAULT_MODEL, "messages": messages}
    answer = httpx.post(start_gateway().url + "/api/chat", json=body)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.json()["done_reason"] == "load"
