"""Metadata and operational endpoints: relayed tags and version, health and readiness."""

from __future__ import annotations

import httpx

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeOllama, Script


def test_tags_are_relayed_byte_for_byte(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.models = ["a:1b", "b:7b"]
    direct = httpx.get(fake.url + "/api/tags")
    relayed = httpx.get(gateway.url + "/api/tags")
    assert relayed.status_code == 200
    assert relayed.content == direct.content
    assert [m["name"] for m in relayed.json()["models"]] == ["a:1b", "b:7b"]


def test_version_is_relayed(fake: FakeOllama, gateway: RunningGateway) -> None:
    relayed = httpx.get(gateway.url + "/api/version")
    assert relayed.status_code == 200
    assert relayed.json() == httpx.get(fake.url + "/api/version").json()


def test_health_is_up_even_without_an_upstream(start_gateway: StartGateway) -> None:
    gateway = start_gateway(upstream="http://127.0.0.1:9")
    response = httpx.get(gateway.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_follows_the_upstream(fake: FakeOllama, start_gateway: StartGateway) -> None:
    assert httpx.get(start_gateway().url + "/ready").json() == {"status": "ready"}
    down = httpx.get(start_gateway(upstream="http://127.0.0.1:9").url + "/ready")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert "cannot reach the model server" in down.json()["error"]


def test_tags_from_an_unreachable_upstream_is_a_502(start_gateway: StartGateway) -> None:
    response = httpx.get(start_gateway(upstream="http://127.0.0.1:9").url + "/api/tags")
    assert response.status_code == 502
    assert set(response.json()) == {"error"}


def test_upstream_error_on_tags_keeps_its_status(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(
        fault="status", status=500, applies_to=frozenset({"/api/tags"}), error_body=b'{"error":"x"}'
    )
    response = httpx.get(gateway.url + "/api/tags")
    assert response.status_code == 500
    assert response.json() == {"error": "x"}
