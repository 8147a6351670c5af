"""Schemathesis against Córtex's own OpenAPI document, on a live Córtex in front of the fake.

Every operation in ``/openapi.json`` (request bodies are declared for the routes that read
their own) gets examples that fit its schema and examples that break it, in front of an
Ollama upstream and an OpenAI-compatible one. For each answer: no 5xx, no traceback, no
upstream address; an error is in the dialect of the path (Ollama's ``{"error": str}`` on
``/api/*``, Anthropic's ``{"type": "error", "error": {...}}`` on ``/v1/messages*``, OpenAI's
``{"error": {"message", ...}}`` on the rest of ``/v1/*``); and a chat answer keeps
the stream invariant of ``tests/invariant.py``. Bounded to a few examples per operation so
the whole module stays well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from cortex.app import create_app
from cortex.config import Settings
from tests.conftest import RunningGateway
from tests.fakes import FakeOllama
from tests.invariant import ClientFraming, Reply, Violation, error_message, judge

KINDS = ("ollama", "openai")
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}


def documented_operations() -> list[tuple[str, str, bool]]:
    """(METHOD, path, takes input) of every operation Córtex documents, read from the app."""
    spec = create_app(Settings(upstream="http://127.0.0.1:9")).app.openapi()
    return [
        (method.upper(), path, "requestBody" in op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def cases() -> list[Any]:
    """Examples that fit the schema for every operation; examples that break it for those
    that read a body (a GET has nothing to break: its one parameter is any string)."""
    return [
        pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
        for method, path, takes_input in documented_operations()
        for mode in EXAMPLES
        if takes_input or mode is GenerationMode.POSITIVE
    ]


class Fuzz:
    def __init__(self, fake: FakeOllama) -> None:
        self.fake = fake
        self.gateways: dict[str, RunningGateway] = {}
        self.schemas: dict[str, Any] = {}
        self.calls = 0


@pytest.fixture(scope="module")
def fuzz() -> Iterator[Fuzz]:
    with FakeOllama() as fake:
        rig = Fuzz(fake)
        try:
            for kind in KINDS:
                settings_ = Settings(
                    upstream=("openai+" if kind == "openai" else "") + fake.url,
                    host="127.0.0.1",
                    port=0,
                    first_byte_timeout=5,
                    idle_timeout=2,
                    circuit_failures=1_000_000,
                )
                gateway = RunningGateway(settings_).__enter__()
                rig.gateways[kind] = gateway
                rig.schemas[kind] = schemathesis.openapi.from_url(gateway.url + "/openapi.json")
            yield rig
        finally:
            for gateway in rig.gateways.values():
                gateway.__exit__()


def check_response(rig: Fuzz, path: str, case: Any, response: Any) -> None:
    status = response.status_code
    text = response.content.decode("utf-8", "replace")
    where = f"{case.method} {path} {case.body!r:.300} -> {status} {text[:300]!r}"
    assert status < 500, f"a server error: {where}"
    api = path.startswith(("/api/", "/v1/"))
    # (/metrics and /cortex/backends name the backends, by address: that is what they are for)
    for marker in ("Traceback", 'File "', *([f":{rig.fake.port}"] if api else [])):
        assert marker not in text, f"the answer shows {marker!r}: {where}"
    if status >= 400 and api:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), where
        dialect = "anthropic" if path.startswith("/v1/messages") else "openai"
        dialect = dialect if path.startswith("/v1/") else "ollama"
        try:
            error_message(dialect, json.loads(response.content))
        except (Violation, ValueError) as exc:
            raise AssertionError(f"{exc}: {where}") from None
    if status == 200 and path in ("/api/chat", "/v1/chat/completions"):
        check_chat(path, case, response, where)


def check_chat(path: str, case: Any, response: Any, where: str) -> None:
    """A chat answer keeps the invariant: whole, or an explicit error at its end."""
    body = case.body if isinstance(case.body, dict) else {}
    if path == "/api/chat":
        accept = (case.headers or {}).get("Accept", "")
        # No messages only loads the model: Ollama answers that with one JSON object.
        stream = body.get("stream") is not False and bool(body.get("messages"))
        framing = ClientFraming("fuzz", "ollama", stream=stream, sse="event-stream" in accept)
    else:
        framing = ClientFraming("fuzz", "openai", stream=body.get("stream") is True)
    if response.stream_cut_short:
        return
    headers = {k.lower(): v[0] for k, v in response.headers.items()}
    reply = Reply(200, headers, response.content, complete=True)
    try:
        judge(framing, reply, None)
    except Violation as exc:
        raise AssertionError(f"{exc}: {where}") from None


@pytest.mark.parametrize(("method", "path", "mode"), cases())
@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_requests_get_no_server_error_and_errors_in_the_dialects_shape(
    fuzz: Fuzz, kind: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = fuzz.schemas[kind][path][method]
    gateway = fuzz.gateways[kind]

    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=gateway.url, timeout=10)
        fuzz.calls += 1
        check_response(fuzz, path, case, response)

    run()
