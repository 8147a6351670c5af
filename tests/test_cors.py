"""Browser pages on other origins: local ones by default (as with Ollama), others when listed."""

from __future__ import annotations

import httpx

from cortex.sources import load_settings
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}


def preflight(gw: RunningGateway, origin: str, path: str = "/api/chat") -> httpx.Response:
    return httpx.options(
        gw.url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def post_from(gw: RunningGateway, origin: str, path: str = "/api/chat") -> httpx.Response:
    return httpx.post(gw.url + path, json=CHAT, headers={"Origin": origin}, timeout=10)


def test_local_pages_may_call_by_default(gateway: RunningGateway) -> None:
    for origin in ("http://localhost:5173", "http://127.0.0.1:3000", "http://localhost"):
        allowed = preflight(gateway, origin)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == origin
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    answer = post_from(gateway, "http://localhost:5173")  # a streaming route
    assert answer.status_code == 200 and b'"done":true' in answer.content
    assert answer.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    models = httpx.get(gateway.url + "/v1/models", headers={"Origin": "http://[::1]:8080"})
    assert models.headers["access-control-allow-origin"] == "http://[::1]:8080"


def test_other_sites_may_not(gateway: RunningGateway, fake: FakeOllama) -> None:
    for origin in ("https://evil.example", "http://localhost.evil.example", "null"):
        refused = preflight(gateway, origin)
        assert refused.status_code == 403
        assert not [h for h in refused.headers if h.startswith("access-control-")]
        answer = post_from(gateway, origin)  # not even started: the model does no work
        assert answer.status_code == 403
        assert "access-control-allow-origin" not in answer.headers
    assert fake.requests == []


def test_listed_origins_with_wildcards(start_gateway: StartGateway) -> None:
    gw = start_gateway(cors_origins=["https://chat.example", "https://*.team.example"])
    for origin in ("https://chat.example", "https://ui.team.example"):
        assert preflight(gw, origin, "/v1/chat/completions").status_code == 200
        assert post_from(gw, origin).headers["access-control-allow-origin"] == origin
    assert preflight(gw, "http://localhost:5173").status_code == 403  # the list replaces


def test_no_other_origin_when_the_list_is_empty(start_gateway: StartGateway) -> None:
    gw = start_gateway(cors_origins=[])
    assert post_from(gw, "http://localhost:5173").status_code == 403
    assert preflight(gw, "http://localhost:5173").status_code == 403
    same_origin = post_from(gw, gw.url)  # Córtex's own chat page
    assert same_origin.status_code == 200


def test_origins_from_the_environment() -> None:
    environ = {"CORTEX_CORS_ORIGINS": "https://a.example, https://*.b.example"}
    assert load_settings(environ=environ).cors_origins == [
        "https://a.example",
        "https://*.b.example",
    ]
    assert "http://localhost:*" in load_settings(environ={}).cors_origins
