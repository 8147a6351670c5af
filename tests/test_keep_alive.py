"""keep_alive: Ollama's durations, and a backend's cap or override applied before upstream."""

from __future__ import annotations

import math

import httpx
import orjson
import pytest

from cortex.keepalive import go_duration, policed, requested
from cortex.sources import ConfigError, load_settings
from tests.conftest import StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (300, 300.0),
        (0, 0.0),
        (-1, math.inf),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("-1m", math.inf),
        ("0", 0.0),
        ("1.5s", 1.5),
        ("-1", None),
        ("5", None),
        ("soon", None),
        (True, None),
    ],
)
def test_durations_read_as_ollama_reads_them(value: object, seconds: float | None) -> None:
    assert requested(value) == seconds


def test_go_durations() -> None:
    assert go_duration("2h45m10s") == 9910
    assert go_duration("") is None
    assert go_duration("m") is None


def test_a_cap_shortens_only_longer_requests() -> None:
    assert policed({"keep_alive": -1}, "30m", None) == {"keep_alive": "30m"}
    assert policed({"keep_alive": "2h"}, 600, None) == {"keep_alive": 600}
    assert policed({"keep_alive": "10m"}, "30m", None) is None
    assert policed({"keep_alive": 0}, "30m", None) is None  # unloading is always allowed
    assert policed({"model": "m"}, "30m", None) is None  # the server's default stands
    assert policed({"keep_alive": "later"}, "30m", None) is None  # left for Ollama to refuse


def test_an_override_sets_every_request() -> None:
    assert policed({"model": "m"}, None, "1m") == {"model": "m", "keep_alive": "1m"}
    assert policed({"keep_alive": "1m"}, None, "1m") is None
    assert policed({"keep_alive": -1}, "1h", "600") == {"keep_alive": 600}


def test_settings_refuse_a_duration_that_is_not_one() -> None:
    with pytest.raises(ConfigError, match="keep_alive_max"):
        load_settings({"keep_alive_max": "forever-ish"})
    settings = load_settings(environ={"CORTEX_KEEP_ALIVE_MAX": "900"})
    assert settings.backend_list()[0].keep_alive_max == "900"


def test_a_backend_policy_wins_over_the_global_one() -> None:
    settings = load_settings(
        {
            "keep_alive_max": "1h",
            "backends": [{"url": "http://a:1", "keep_alive_max": "5m"}, {"url": "http://b:1"}],
        }
    )
    assert [b.keep_alive_max for b in settings.backend_list()] == ["5m", "1h"]


def test_a_pinning_chat_is_capped_before_it_goes_upstream(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(keep_alive_max="30m")
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    httpx.post(gateway.url + "/api/chat", json={**body, "keep_alive": -1, "stream": False})
    assert orjson.loads(fake.requests[-1].body)["keep_alive"] == "30m"
    raw = orjson.dumps({**body, "keep_alive": "1m"})
    httpx.post(gateway.url + "/api/chat", content=raw)
    assert fake.requests[-1].body == raw  # within the cap: relayed byte for byte


def test_an_override_reaches_generate_embed_and_loads(
    fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway(backends=[{"url": fake.url, "keep_alive_override": "2m"}])
    calls = [
        ("/api/generate", {"model": DEFAULT_MODEL, "prompt": "hi", "keep_alive": -1}),
        ("/api/embed", {"model": DEFAULT_MODEL, "input": "hi"}),
        ("/api/chat", {"model": DEFAULT_MODEL, "keep_alive": -1}),
    ]
    for path, body in calls:
        assert httpx.post(gateway.url + path, json=body).status_code == 200
        sent = [r for r in fake.requests if r.path == path][-1]
        assert orjson.loads(sent.body)["keep_alive"] == "2m"
