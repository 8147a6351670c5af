"""OpenTelemetry: real OTLP/HTTP received and decoded, against real requests through Córtex."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cortex.telemetry.genai import DURATION_BUCKETS, TOKEN_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS
from tests.conftest import StartGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import open_raw_stream, read_until, stream_lines
from tests.otlp_receiver import OTLPReceiver, attributes

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "un secreto"}]}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture  # listed before start_gateway, so Córtex flushes to it before it closes
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "cortex-under-test")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
        yield receiver


def hex_id(raw: bytes) -> str:
    return raw.hex()


def children(otlp: OTLPReceiver, parent: Span) -> list[Span]:
    return [s for _, s in otlp.spans if s.parent_span_id == parent.span_id]


def test_a_streamed_relay_is_a_server_span_under_the_clients_with_a_client_span_upstream(
    otlp: OTLPReceiver, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(tokens=["uno", " dos", " tres"], done_reason="stop")
    gateway = start_gateway()
    response, _ = stream_lines(
        gateway.url, {**HELLO, "options": {"temperature": 0.5}}, {"traceparent": TRACEPARENT}
    )
    assert response.status_code == 200

    server = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_SERVER)
    assert server.name == "POST /api/chat"
    assert hex_id(server.trace_id) == CLIENT_TRACE
    assert hex_id(server.parent_span_id) == CLIENT_SPAN
    http = attributes(server.attributes)
    assert http["http.request.method"] == "POST"
    assert http["http.route"] == http["url.path"] == "/api/chat"
    assert http["http.response.status_code"] == 200
    assert http["server.port"] == gateway.port
    assert http["client.address"] == "127.0.0.1"
    assert "http.method" not in http  # the old names only with http/dup

    otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_CLIENT)
    (client,) = children(otlp, server)
    assert client.kind == Span.SPAN_KIND_CLIENT
    assert client.name == f"chat {DEFAULT_MODEL}"
    assert client.trace_id == server.trace_id
    genai = attributes(client.attributes)
    assert genai["gen_ai.operation.name"] == "chat"
    assert genai["gen_ai.system"] == "ollama"  # v1.36's name, without the opt-in
    assert "gen_ai.provider.name" not in genai
    assert genai["gen_ai.request.model"] == DEFAULT_MODEL
    assert genai["gen_ai.request.temperature"] == 0.5
    assert genai["gen_ai.usage.output_tokens"] == 3
    assert genai["gen_ai.usage.input_tokens"] > 0
    assert genai["gen_ai.response.finish_reasons"] == ("stop",)
    assert genai["gen_ai.response.model"] == DEFAULT_MODEL  # as the answer's last line names it
    assert genai["server.address"] == "127.0.0.1"
    assert genai["server.port"] == fake.port
    assert "error.type" not in genai
    # the upstream's work is the client span's child, though its bytes were relayed as they came
    sent = fake.requests[-1].headers["traceparent"]
    assert sent == f"00-{CLIENT_TRACE}-{hex_id(client.span_id)}-01"
    # nothing of the conversation is in any span
    for _, span in otlp.spans:
        assert "secreto" not in orjson.dumps([str(kv) for kv in span.attributes]).decode()
    resource = next(r for r, s in otlp.spans if s is server)
    assert resource["service.name"] == "cortex-under-test"
    assert resource["deployment.environment.name"] == "test"
    assert otlp.content_types == {"application/x-protobuf"}


def test_a_translated_whole_answer_with_the_latest_names(
    otlp: OTLPReceiver,
    fake: FakeOllama,
    start_gateway: StartGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental,http/dup")
    fake.script = Script(tokens=["a", "b"], done_reason="length")
    gateway = start_gateway()
    body = {**HELLO, "max_tokens": 2, "top_p": 0.9, "stream": False}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200

    server = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_SERVER)
    assert server.parent_span_id == b""  # no traceparent: a root span
    http = attributes(server.attributes)
    assert http["http.method"] == "POST" and http["http.status_code"] == 200  # http/dup
    client = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_CLIENT)
    assert client.parent_span_id == server.span_id
    genai = attributes(client.attributes)
    assert genai["gen_ai.provider.name"] == "ollama"
    assert "gen_ai.system" not in genai
    assert genai["gen_ai.request.max_tokens"] == 2
    assert genai["gen_ai.request.top_p"] == 0.9
    assert genai["gen_ai.usage.output_tokens"] == 2
    assert genai["gen_ai.response.finish_reasons"] == ("length",)
    assert genai["gen_ai.response.model"] == DEFAULT_MODEL


def test_a_failing_upstream_marks_both_spans_with_its_error(
    otlp: OTLPReceiver, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(fault="status", status=500)
    gateway = start_gateway(upstream="openai+" + fake.url)
    answer = httpx.post(gateway.url + "/api/generate", json={**HELLO, "prompt": "x"}, timeout=10)
    assert answer.status_code == 500

    client = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_CLIENT)
    assert client.name == f"text_completion {DEFAULT_MODEL}"
    genai = attributes(client.attributes)
    assert genai["error.type"] == "500"
    assert genai["gen_ai.system"] == "openai"  # a local OpenAI-compatible server
    assert client.status.code == Status.STATUS_CODE_ERROR
    server = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_SERVER)
    assert attributes(server.attributes)["error.type"] == "500"
    assert server.status.code == Status.STATUS_CODE_ERROR


def test_an_embeddings_request_is_an_embeddings_client_span_with_its_input_tokens(
    otlp: OTLPReceiver, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    gateway = start_gateway()
    body = {"model": DEFAULT_MODEL, "input": ["uno dos", "tres"]}
    answer = httpx.post(
        gateway.url + "/api/embed", json=body, headers={"traceparent": TRACEPARENT}, timeout=10
    )
    assert answer.status_code == 200

    client = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_CLIENT)
    assert client.name == f"embeddings {DEFAULT_MODEL}"
    genai = attributes(client.attributes)
    assert genai["gen_ai.operation.name"] == "embeddings"
    assert genai["gen_ai.request.model"] == DEFAULT_MODEL
    assert genai["gen_ai.usage.input_tokens"] == answer.json()["prompt_eval_count"]
    assert "gen_ai.usage.output_tokens" not in genai
    server = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_SERVER)
    assert server.name == "POST /api/embed"
    assert client.parent_span_id == server.span_id
    assert hex_id(client.trace_id) == CLIENT_TRACE
    sent = {r.headers["traceparent"] for r in fake.requests if r.path == "/api/embed"}
    assert sent == {f"00-{CLIENT_TRACE}-{hex_id(client.span_id)}-01"}


def test_each_failover_attempt_is_a_client_span_and_the_winner_carries_its_own_traceparent(
    otlp: OTLPReceiver, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    with FakeOllama() as good:
        fake.script = Script(fault="status", status=503)
        gateway = start_gateway(
            backends=[{"url": fake.url}, {"url": good.url}], routing="round-robin"
        )
        for _ in range(2):  # taking turns, one of them tries the failing backend first
            assert httpx.post(gateway.url + "/api/chat", json=HELLO, timeout=10).status_code == 200

        def failed_over(span: Span) -> bool:
            return span.kind == Span.SPAN_KIND_SERVER and len(children(otlp, span)) == 2

        server = otlp.wait_span(failed_over)
        first, second = sorted(children(otlp, server), key=lambda s: s.start_time_unix_nano)
        assert attributes(first.attributes)["error.type"] == "503"
        assert "error.type" not in attributes(second.attributes)
        assert attributes(second.attributes)["server.port"] == good.port
        sent = {r.headers["traceparent"].split("-")[2] for r in good.requests if r.method == "POST"}
        assert hex_id(second.span_id) in sent


def test_genai_metrics_have_the_conventions_names_units_buckets_and_attributes(
    otlp: OTLPReceiver, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(tokens=["uno", " dos", " tres", " cuatro"], delay=0.01)
    gateway = start_gateway()
    response, _ = stream_lines(gateway.url, HELLO)
    assert response.status_code == 200

    def chat(point: object) -> bool:
        found = attributes(point.attributes)  # type: ignore[attr-defined]
        return found.get("gen_ai.operation.name") == "chat"

    expected = {
        "gen_ai.server.time_to_first_token": ("s", TTFT_BUCKETS),
        "gen_ai.server.time_per_output_token": ("s", TPOT_BUCKETS),
        "gen_ai.server.request.duration": ("s", DURATION_BUCKETS),
        "gen_ai.client.operation.duration": ("s", DURATION_BUCKETS),
        "gen_ai.client.token.usage": ("{token}", TOKEN_BUCKETS),
    }
    for name, (unit, buckets) in expected.items():
        metric, point = otlp.wait_metric(name, chat)
        assert metric.unit == unit, name
        assert tuple(point.explicit_bounds) == buckets, name
        assert point.count >= 1, name
        found = attributes(point.attributes)
        assert found["gen_ai.system"] == "ollama", name
        assert found["gen_ai.request.model"] == DEFAULT_MODEL, name
    usage = {
        attributes(p.attributes)["gen_ai.token.type"]: p.sum
        for m in otlp.metrics
        if m.name == "gen_ai.client.token.usage"
        for p in m.histogram.data_points
    }
    assert usage["output"] == 4
    _, upstream = otlp.wait_metric("gen_ai.client.operation.duration", chat)
    assert attributes(upstream.attributes)["server.port"] == fake.port


def test_with_otel_unset_no_exporter_starts_and_nothing_is_sent(
    fake: FakeOllama, start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with OTLPReceiver() as otlp:
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # set, but no endpoint: still off
        gateway = start_gateway()
        assert gateway.server.config.app._telemetry is None
        response, _ = stream_lines(gateway.url, HELLO, {"traceparent": TRACEPARENT})
        assert response.status_code == 200
        assert "traceparent" not in fake.requests[-1].headers
        names = {t.name for t in threading.enumerate()}
        assert "cortex-otlp" not in names
        assert otlp.posts == []


def test_otel_sdk_disabled_wins_over_an_endpoint(
    otlp: OTLPReceiver,
    fake: FakeOllama,
    start_gateway: StartGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    gateway = start_gateway()
    assert httpx.post(gateway.url + "/api/chat", json=HELLO, timeout=10).status_code == 200
    assert "traceparent" not in fake.requests[-1].headers
    assert otlp.posts == []


def test_an_unsampled_trace_sends_no_span_but_carries_its_context_upstream(
    otlp: OTLPReceiver,
    fake: FakeOllama,
    start_gateway: StartGateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    gateway = start_gateway()
    headers = {"traceparent": TRACEPARENT, "tracestate": "vendor=opaque"}
    assert httpx.post(gateway.url + "/api/chat", json=HELLO, headers=headers).status_code == 200
    sent = fake.requests[-1].headers
    assert sent["traceparent"].startswith(f"00-{CLIENT_TRACE}-")
    assert sent["traceparent"].endswith("-00")  # not sampled: the flag says so
    assert sent["tracestate"] == "vendor=opaque"
    gateway.__exit__()  # Córtex exports what is left as it stops
    assert otlp.posts == []


def test_a_client_that_leaves_ends_the_attempt_cancelled_not_failed(
    otlp: OTLPReceiver, fake: FakeOllama, start_gateway: StartGateway
) -> None:
    fake.script = Script(count=10_000, delay=0.02)
    gateway = start_gateway()
    sock = open_raw_stream(gateway.host, gateway.port, HELLO)
    read_until(sock, b"tok1 ")
    sock.close()
    assert fake.wait_disconnect(5) is not None

    client = otlp.wait_span(lambda s: s.kind == Span.SPAN_KIND_CLIENT)
    assert attributes(client.attributes)["error.type"] == "cancelled"
    assert client.status.code != Status.STATUS_CODE_ERROR
