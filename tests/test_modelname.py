"""One rule for model names: the keys, the catalogue, the router and residency agree on it."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cortex.access.keys import generate_key, hash_key
from cortex.backends.http import WIRES
from cortex.catalog import ModelEntry, find_model
from cortex.config import BackendSettings, KeyRecord
from cortex.modelname import canonical, pick, same_model
from cortex.routing.circuit import Circuit
from cortex.routing.member import Member
from cortex.routing.residency import Loaded, Residency
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeOllama

HASH = "0" * 64

OLLAMA_NAMES = ["llama3.2:latest", "qwen3:8b", "hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M"]
OPENAI_NAMES = ["Qwen/Qwen3-8B", "gpt-oss-20b"]
ASKED = [
    "llama3.2",
    "llama3.2:latest",
    "library/llama3.2",
    "registry.ollama.ai/library/llama3.2:latest",
    "llama3.2:1b",
    "qwen3",
    "qwen3:8b",
    "Qwen/Qwen3-8B",
    "Qwen/Qwen3-8B:latest",
    "qwen/qwen3-8b",
    "gpt-oss-20b",
    "gpt-oss-20b:latest",
    "gpt-oss:20b",
    "hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M",
    "hf.co/bartowski/Qwen3-8B-GGUF",
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("llama3.2:latest", "llama3.2:latest"),
        ("qwen3:8b", "qwen3:8b"),
        ("library/llama3.2", "llama3.2:latest"),
        ("registry.ollama.ai/library/llama3.2:1b", "llama3.2:1b"),
        ("registry.ollama.ai/someone/model", "someone/model:latest"),
        ("Qwen/Qwen3-8B", "Qwen/Qwen3-8B:latest"),
        ("gpt-oss-20b", "gpt-oss-20b:latest"),
        ("hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M", "hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M"),
        ("localhost:5000/m", "localhost:5000/m:latest"),  # a registry's port is not a tag
        ("library/a/b", "library/a/b:latest"),  # "library" is a host here, not the namespace
        ("gpt-oss:20b:cloud", "gpt-oss:20b:cloud"),  # Ollama's cloud model is another model
        ("", ""),
    ],
)
def test_a_name_is_read_as_ollama_reads_it(name: str, expected: str) -> None:
    assert canonical(name) == expected


def test_case_and_spaces_make_another_name() -> None:
    assert not same_model("Llama3.2", "llama3.2")
    assert not same_model(" llama3.2", "llama3.2")


@given(st.text(alphabet="ab/:.-lirygemso", max_size=30))
def test_canonical_is_idempotent(name: str) -> None:
    assert canonical(canonical(name)) == canonical(name)


def test_a_listed_name_is_picked_before_another_spelling_of_it() -> None:
    assert pick(["m", "m:latest"], "m:latest") == "m:latest"
    assert pick(["m", "m:latest"], "m") == "m"
    assert pick(["m:latest"], "m") == "m:latest"
    assert pick(["m"], "m:latest") == "m"
    assert pick(["m:7b"], "m") is None


def member(kind: str, names: list[str]) -> Member:
    config = BackendSettings(name=kind, url="http://127.0.0.1:1", kind=kind)  # type: ignore[arg-type]
    backend = SimpleNamespace(wire=WIRES[kind])
    m = Member(config, backend=backend, circuit=Circuit(3, 10))  # type: ignore[arg-type]
    m.models = [ModelEntry(n, 0, "x") for n in names]
    return m


ALLOWED = ["llama3.2", "llama3.2:latest", "qwen3:8b", "Qwen/Qwen3-8B", "gpt-oss-20b:latest"]


@pytest.mark.parametrize("allowed", ALLOWED)
@pytest.mark.parametrize("names", [OLLAMA_NAMES, OPENAI_NAMES, OLLAMA_NAMES + OPENAI_NAMES])
def test_a_key_allowed_a_name_may_use_what_the_router_serves_under_it(
    allowed: str, names: list[str]
) -> None:
    key = KeyRecord(name="k", key_hash=HASH, models=[allowed])
    entries = [ModelEntry(n, 0, "x") for n in names]
    served_as_allowed = {e.name for e in entries if member("ollama", [e.name]).serves(allowed)}
    assert {e.name for e in entries if key.allows(e.name)} == served_as_allowed
    for asked in ASKED:
        entry = find_model(entries, asked)
        served = member("ollama", names).serves(asked)
        assert served == (entry is not None), asked
        if entry is not None:
            assert key.allows(asked) == (entry.name in served_as_allowed), asked


def test_an_openai_server_is_sent_the_name_it_listed() -> None:
    openai = member("openai", OPENAI_NAMES)
    assert openai.upstream_name("Qwen/Qwen3-8B:latest") == "Qwen/Qwen3-8B"
    assert openai.upstream_name("gpt-oss-20b") == "gpt-oss-20b"
    ollama = member("ollama", OLLAMA_NAMES)
    assert ollama.upstream_name("llama3.2") == "llama3.2", "Ollama reads names by the same rule"


def test_residency_knows_a_model_by_any_of_its_names() -> None:
    residency = Residency({"llama3.2:latest": Loaded("llama3.2:latest", 1, None)})
    residency.started("llama3.2")
    assert residency.is_loaded("library/llama3.2")
    assert residency.crowd("llama3.2") == 0 and residency.evicts_busy("llama3.2") == 0
    view = residency.view()
    assert view is not None and view[0]["name"] == "llama3.2:latest"
    assert view[0]["in_flight"] == 1
    residency.ended("llama3.2:latest")
    assert residency.busy == {}


# ---- end to end: keys, lists and routing through a running gateway ------------------------

KEYS = {m: generate_key() for m in ALLOWED}
OPEN = generate_key()


def ask(gw: RunningGateway, key: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hola"}], "stream": False}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(gw.url + "/api/chat", json=body, headers=headers, timeout=15)


def visible(gw: RunningGateway, key: str) -> set[str]:
    headers = {"Authorization": f"Bearer {key}"}
    tags = httpx.get(gw.url + "/api/tags", headers=headers, timeout=5).json()["models"]
    ids = httpx.get(gw.url + "/v1/models", headers=headers, timeout=5).json()["data"]
    assert [m["name"] for m in tags] == [m["id"] for m in ids], "the two lists agree"
    return {m["id"] for m in ids}


def retrieved(gw: RunningGateway, key: str, model: str) -> str | None:
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.get(f"{gw.url}/v1/models/{model}", headers=headers, timeout=5)
    return str(answer.json()["id"]) if answer.status_code == 200 else None


def test_a_key_allowed_m_sees_and_uses_exactly_the_models_served_as_m(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.models = OLLAMA_NAMES
    with FakeOllama(models=OPENAI_NAMES) as vllm:
        fakes = {"ollama": fake, "vllm": vllm}
        keys = [
            {"name": f"k{n}", "key_hash": hash_key(key), "models": [m]}
            for n, (m, key) in enumerate(KEYS.items())
        ]
        gw = start_gateway(
            keys=[*keys, {"name": "open", "key_hash": hash_key(OPEN)}],
            backends=[
                {"name": "ollama", "url": fake.url},
                {"name": "vllm", "url": "openai+" + vllm.url},
            ],
        )
        served: dict[str, str | None] = {}  # each name asked for: the listed model that answered
        found = {name: retrieved(gw, OPEN, name) for name in ASKED}
        for name in ASKED:
            answer = ask(gw, OPEN, name)
            upstream = fakes.get(answer.headers.get("x-cortex-backend", ""))
            if answer.status_code != 200 or upstream is None:
                served[name] = None
            else:
                sent = [r.json["model"] for r in upstream.requests if r.method == "POST"][-1]
                served[name] = upstream.resolve(sent)
        assert served["Qwen/Qwen3-8B:latest"] == "Qwen/Qwen3-8B"
        assert served["llama3.2"] == served["llama3.2:latest"] == "llama3.2:latest"
        for allowed, key in KEYS.items():
            seen = visible(gw, key)
            assert seen == ({served[allowed]} if served[allowed] else set()), allowed
            for name in ASKED:
                status = ask(gw, key, name).status_code
                may = served[name] is not None and served[name] in seen
                assert (status == 200) == may, (allowed, name, status)
                if served[name] is not None and not may:
                    assert status == 403, (allowed, name, status)
                expected = found[name] if found[name] in seen else None
                assert retrieved(gw, key, name) == expected, (allowed, name)
