"""Aliases: a name a client hard-codes, served by a local model, listed, and honoured by keys."""

from __future__ import annotations

import httpx
import openai
import pytest

from cortex.access.keys import generate_key, hash_key
from cortex.aliases import Aliases
from cortex.catalog import ModelEntry
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama

anthropic = pytest.importorskip("anthropic")

ALIASES = {"claude-sonnet-4-5": DEFAULT_MODEL, "claude-haiku-*": DEFAULT_MODEL, "gpt-4o": "nope"}
HI = [{"role": "user", "content": "hola"}]


def test_an_exact_alias_comes_before_a_pattern_and_patterns_go_in_order() -> None:
    aliases = Aliases({"a-*": "one", "a-b": "two", "a-?c": "three"})
    assert aliases.resolve("a-b") == "two"
    assert aliases.resolve("a-b:latest") == "two"  # names compare by modelname.canonical
    assert aliases.resolve("a-xc") == "one"
    assert aliases.resolve("b") is None
    assert not Aliases({})


def test_only_aliases_of_served_models_are_listed() -> None:
    served = [ModelEntry("qwen3:8b", 0, "library")]
    listed = Aliases({"gpt-4o": "qwen3:8b", "gpt-4": "gone", "claude-*": "qwen3:8b"}).listed(served)
    assert [entry.name for entry in listed] == ["qwen3:8b", "gpt-4o"]


@pytest.fixture
def aliased(start_gateway: StartGateway) -> RunningGateway:
    return start_gateway(aliases=ALIASES)


def test_a_client_asking_for_an_alias_is_served_by_its_model(
    fake: FakeOllama, aliased: RunningGateway
) -> None:
    with anthropic.Anthropic(base_url=aliased.url, api_key="x", max_retries=0) as client:
        for name in ("claude-sonnet-4-5", "claude-haiku-4-5-20251001"):
            message = client.messages.create(model=name, max_tokens=20, messages=HI)
            assert message.content[0].text
            assert fake.requests[-1].json["model"] == DEFAULT_MODEL
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-opus-4-1", max_tokens=20, messages=HI)


def test_aliases_are_listed_beside_their_models(aliased: RunningGateway) -> None:
    tags = httpx.get(aliased.url + "/api/tags").json()["models"]
    assert {m["name"] for m in tags} == {DEFAULT_MODEL, "claude-sonnet-4-5"}
    ids = [m.id for m in openai.OpenAI(base_url=aliased.url + "/v1", api_key="x").models.list()]
    assert sorted(ids) == sorted([DEFAULT_MODEL, "claude-sonnet-4-5"])
    shown = httpx.post(aliased.url + "/api/show", json={"model": "claude-sonnet-4-5"})
    assert shown.status_code == 200


def test_a_key_allowed_an_alias_or_its_model_may_use_the_alias(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    by_alias, by_model = generate_key(), generate_key()
    keys = [
        {"name": "alias", "key_hash": hash_key(by_alias), "models": ["claude-sonnet-4-5"]},
        {"name": "model", "key_hash": hash_key(by_model), "models": [DEFAULT_MODEL]},
    ]
    gateway = start_gateway(aliases=ALIASES, keys=keys)

    def ask(key: str, model: str) -> int:
        body = {"model": model, "max_tokens": 5, "messages": HI}
        headers = {"x-api-key": key}
        return httpx.post(gateway.url + "/v1/messages", json=body, headers=headers).status_code

    assert ask(by_alias, "claude-sonnet-4-5") == 200
    assert ask(by_alias, DEFAULT_MODEL) == 403
    assert ask(by_alias, "claude-haiku-4-5") == 403  # another alias of the same model
    assert ask(by_model, "claude-sonnet-4-5") == 200
    assert ask(by_model, DEFAULT_MODEL) == 200
