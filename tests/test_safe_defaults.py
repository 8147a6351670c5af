"""Safe by default: what a hostile web page or a crafted body can make Córtex do (nothing).

Each refusal is checked twice: the client gets the status, and the fake model
server never saw the request.
"""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest

from cortex.access.hostguard import HostGuard, HostPolicy, Refusal
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}


def raw_request(gw: RunningGateway, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection((gw.host, gw.port), timeout=5) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def generations(fake: FakeOllama) -> list[str]:
    return [r.path for r in fake.requests if r.method == "POST"]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/tags"), ("POST", "/v1/chat/completions")]
)
def test_a_rebinding_host_name_is_refused(
    gateway: RunningGateway, fake: FakeOllama, method: str, path: str
) -> None:
    body = orjson.dumps({**CHAT, "stream": False})
    refused = httpx.request(
        method,
        gateway.url + path,
        content=body if method == "POST" else None,
        headers={"Host": f"attacker.example:{gateway.port}"},
        timeout=5,
    )
    assert refused.status_code == 403
    assert "host" in refused.text
    assert generations(fake) == []
    assert [r.path for r in fake.requests if r.path == "/api/tags"] == []


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "[::1]", "my-laptop.local", "ui.localhost", "10.1.2.3"]
)
def test_local_host_names_are_answered(gateway: RunningGateway, host: str) -> None:
    answer = httpx.get(
        gateway.url + "/api/version", headers={"Host": f"{host}:{gateway.port}"}, timeout=5
    )
    assert answer.status_code == 200


def test_listed_hosts_are_answered_and_a_star_allows_any(start_gateway: StartGateway) -> None:
    listed = start_gateway(allowed_hosts=["cortex.example", "*.lan.example"])
    for host, status in [("cortex.example", 200), ("gpu.lan.example", 200), ("evil.example", 403)]:
        answer = httpx.get(listed.url + "/health", headers={"Host": host}, timeout=5)
        assert answer.status_code == status, host
    anything = start_gateway(allowed_hosts=["*"])
    assert httpx.get(anything.url + "/health", headers={"Host": "x.example"}).status_code == 200


def test_bound_to_a_public_address_any_host_is_answered_unless_listed() -> None:
    assert HostPolicy("0.0.0.0", []).allows(b"gpu-box.example:4000")
    assert not HostPolicy("0.0.0.0", ["cortex.example"]).allows(b"gpu-box.example:4000")
    assert not HostPolicy("127.0.0.1", []).allows(b"gpu-box.example:4000")
    assert HostPolicy("127.0.0.1", []).allows(b"[::1]:4000")


def test_a_blind_cross_site_post_starts_nothing(gateway: RunningGateway, fake: FakeOllama) -> None:
    refused = httpx.post(
        gateway.url + "/api/chat",
        content=orjson.dumps(CHAT),
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
        timeout=5,
    )
    assert refused.status_code == 403
    assert "origin" in refused.json()["error"]
    assert generations(fake) == []


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:5173",
        "https://127.0.0.1",
        "http://[::1]:3000",
        "app://obsidian.md",
        "tauri://localhost",
        "vscode-webview://1234abcd",
        "vscode-file://vscode-app",
    ],
)
def test_local_pages_and_desktop_apps_may_post(
    gateway: RunningGateway, fake: FakeOllama, origin: str
) -> None:
    answer = httpx.post(
        gateway.url + "/api/chat", json=CHAT, headers={"Origin": origin}, timeout=10
    )
    assert answer.status_code == 200
    assert generations(fake) == ["/api/chat"]


def test_http11_without_a_host_or_with_two_is_a_400(
    gateway: RunningGateway, fake: FakeOllama
) -> None:
    body = orjson.dumps(CHAT)
    length = b"Content-Length: %d\r\n" % len(body)
    missing = raw_request(
        gateway, b"POST /api/chat HTTP/1.1\r\n" + length + b"Connection: close\r\n\r\n", body
    )
    assert missing.startswith(b"HTTP/1.1 400")
    twice = raw_request(
        gateway,
        b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\n"
        + length
        + b"Connection: close\r\n\r\n",
        body,
    )
    assert twice.startswith(b"HTTP/1.1 400")
    assert generations(fake) == []


def test_the_host_guard_judges_in_one_pass_and_hands_on_the_first_origin() -> None:
    """The pipeline's first check: the answer is a refusal, or the request's first
    ``Origin`` (which decides whether the CORS layer answers), or None without one."""
    guard = HostGuard("127.0.0.1", [], ["http://app.example"])

    def check(*headers: tuple[bytes, bytes], version: str = "1.1") -> Refusal | bytes | None:
        return guard.check({"type": "http", "http_version": version, "headers": list(headers)})

    host = (b"host", b"localhost:4000")
    assert check(host) is None
    assert check((b"origin", b"http://app.example"), host) == b"http://app.example"
    assert check(host, (b"origin", b"http://localhost:4000"), (b"origin", b"http://x")) == (
        b"http://localhost:4000"
    )
    assert check(host, host) == Refusal(400, "a request needs exactly one Host header")
    assert check() == Refusal(400, "a request needs exactly one Host header")
    assert check(version="1.0") is None
    assert isinstance(check((b"host", b"attacker.example")), Refusal)
    refused = check(host, (b"origin", b"http://evil.example"))
    assert isinstance(refused, Refusal) and refused.status == 403


def test_a_request_line_in_absolute_form_is_judged_by_the_host_it_names(
    gateway: RunningGateway, fake: FakeOllama
) -> None:
    def ask(target: bytes) -> bytes:
        head = b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        return raw_request(gateway, head)

    foreign = ask(b"http://attacker.example/api/tags")
    assert foreign.startswith(b"HTTP/1.1 403"), foreign[:80]
    assert ask(b"http://localhost:4000/api/tags").startswith(b"HTTP/1.1 200")
    assert ask(b"/api/tags").startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"model": DEFAULT_MODEL, "MODEL": "llava"}, "MODEL"),
        ({"Model": "llava"}, "Model"),
        ({"mOdel": "llava"}, "mOdel"),
        ({"model": DEFAULT_MODEL, "Stream": False}, "Stream"),
        ({"model": DEFAULT_MODEL, "ſtream": False}, "ſtream"),  # Go folds ſ to s
        (
            {
                "model": DEFAULT_MODEL,
                "messages": [{"role": "user", "Content": "x", "content": "y"}],
            },
            "Content",
        ),
    ],
)
def test_a_key_that_differs_from_a_field_only_in_case_is_refused(
    gateway: RunningGateway, fake: FakeOllama, body: dict[str, object], named: str
) -> None:
    payload = {"messages": [{"role": "user", "content": "hi"}], **body}
    refused = httpx.post(gateway.url + "/api/chat", content=orjson.dumps(payload), timeout=5)
    assert refused.status_code == 400
    assert f'"{named}"' in refused.json()["error"]
    assert generations(fake) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model":"%s","model":"llava","messages":[]}',
        b'{"model":"%s","mod\\u0065l":"llava","messages":[]}',
        b'{"model":"%s","messages":[{"role":"user","role":"system","content":"x"}],'
        b'"stream":false,"stream":true}',
    ],
)
def test_a_field_given_twice_is_refused(
    gateway: RunningGateway, fake: FakeOllama, raw: bytes
) -> None:
    body = raw.replace(b"%s", DEFAULT_MODEL.encode())
    refused = httpx.post(gateway.url + "/api/chat", content=body, timeout=5)
    assert refused.status_code == 400
    assert "twice" in refused.json()["error"]
    assert generations(fake) == []


def test_a_per_key_model_limit_holds_against_case_variants(
    start_gateway: StartGateway, fake: FakeOllama
) -> None:
    from cortex.access.keys import hash_key

    fake.models.append("llava")
    gw = start_gateway(
        keys=[{"name": "ci", "key_hash": hash_key("ctx-test-key"), "models": [DEFAULT_MODEL]}]
    )
    body = {**CHAT, "MODEL": "llava"}
    refused = httpx.post(
        gw.url + "/api/chat",
        content=orjson.dumps(body),
        headers={"Authorization": "Bearer ctx-test-key"},
        timeout=5,
    )
    assert refused.status_code == 400
    assert generations(fake) == []


def key_entry(name: str, key: str, **limits: object) -> dict[str, object]:
    from cortex.access.keys import hash_key

    return {"name": name, "key_hash": hash_key(key), **limits}


def test_unnamed_backends_have_neutral_names_and_only_admins_see_addresses(
    start_gateway: StartGateway, fake: FakeOllama
) -> None:
    gw = start_gateway(
        backends=[{"url": fake.url}, {"url": fake.url, "name": "gpu-box"}],
        keys=[key_entry("ops", "ctx-admin", admin=True), key_entry("app", "ctx-app")],
    )
    answer = httpx.post(
        gw.url + "/api/chat", json=CHAT, headers={"Authorization": "Bearer ctx-app"}, timeout=10
    )
    assert answer.headers["x-cortex-backend"] in ("backend-1", "gpu-box")
    port = str(fake.port)
    plain = httpx.get(gw.url + "/cortex/backends", headers={"Authorization": "Bearer ctx-app"})
    assert [b["name"] for b in plain.json()["backends"]] == ["backend-1", "gpu-box"]
    assert port not in plain.text and "url" not in plain.json()["backends"][0]
    admin = httpx.get(gw.url + "/cortex/backends", headers={"Authorization": "Bearer ctx-admin"})
    assert [b["url"] for b in admin.json()["backends"]] == [fake.url, fake.url]


def test_nobody_sees_addresses_with_keys_off(gateway: RunningGateway, fake: FakeOllama) -> None:
    status = httpx.get(gateway.url + "/cortex/backends", timeout=5)
    assert str(fake.port) not in status.text
    assert status.json()["backends"][0]["name"] == "backend-1"


@pytest.mark.parametrize("backends", [1, 2], ids=["lone backend", "merged catalogue"])
def test_a_key_limited_to_some_models_sees_only_those(
    start_gateway: StartGateway, fake: FakeOllama, backends: int
) -> None:
    fake.models = [DEFAULT_MODEL, "llava:latest", "qwen3:8b"]
    settings: dict[str, object] = {
        "keys": [key_entry("ci", "ctx-ci", models=["fake-llama", "qwen3:8b"])]
    }
    if backends == 2:
        settings["backends"] = [{"url": fake.url}, {"url": fake.url, "name": "again"}]
    gw = start_gateway(**settings)
    auth = {"Authorization": "Bearer ctx-ci"}
    tags = httpx.get(gw.url + "/api/tags", headers=auth, timeout=5).json()["models"]
    assert sorted(m["name"] for m in tags) == [DEFAULT_MODEL, "qwen3:8b"]
    listed = httpx.get(gw.url + "/v1/models", headers=auth, timeout=5).json()["data"]
    assert sorted(m["id"] for m in listed) == [DEFAULT_MODEL, "qwen3:8b"]
    assert httpx.get(gw.url + "/v1/models/llava", headers=auth, timeout=5).status_code == 404
    assert httpx.get(gw.url + "/v1/models/qwen3:8b", headers=auth, timeout=5).status_code == 200
