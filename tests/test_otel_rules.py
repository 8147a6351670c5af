"""The rules behind the telemetry, without the SDK: when it is on, and what names it uses."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from cortex.dialects.anthropic.reader import MessagesReader
from cortex.dialects.ollama.reader import OllamaReader
from cortex.dialects.ollama.writer import OllamaWriter
from cortex.dialects.openai.reader import OpenAIReader
from cortex.errors import FirstByteTimeout, UpstreamStatus, UpstreamUnreachable
from cortex.stream.encode import NDJSON
from cortex.stream.translate import CrossDialect
from cortex.telemetry import Signals, signals, telemetry_from_env
from cortex.telemetry.genai import Conventions, error_type, provider, request_parameters
from cortex.telemetry.otlp import Parent, parse_traceparent
from cortex.telemetry.settings import OTLPSettings, Sampler

ENDPOINT = "http://collector:4318"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, Signals(False, False)),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_EXPORTER": "otlp"}, Signals(False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, Signals(True, True)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT}, Signals(True, False)),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ENDPOINT}, Signals(False, True)),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_METRICS_EXPORTER": "none"},
            Signals(True, False),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
            Signals(False, True),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"},
            Signals(False, False),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "false"},
            Signals(True, True),
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, Signals(False, False)),
    ],
)
def test_which_signals_the_otel_variables_turn_on(
    environ: dict[str, str], expected: Signals
) -> None:
    assert signals(environ) == expected


def test_an_exporter_córtex_does_not_have_is_off(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "zipkin"}
    assert signals(environ) == Signals(False, True)
    assert "OTEL_TRACES_EXPORTER" in caplog.text


def test_nothing_is_set_up_without_an_endpoint() -> None:
    assert telemetry_from_env({"OTEL_SERVICE_NAME": "cortex"}) is None


def test_the_stability_opt_in_chooses_the_names() -> None:
    assert Conventions.from_env({}) == Conventions(latest_genai=False, old_http=False)
    assert Conventions.from_env({}).provider_key == "gen_ai.system"
    latest = Conventions.from_env(
        {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup, gen_ai_latest_experimental"}
    )
    assert latest == Conventions(latest_genai=True, old_http=True)
    assert latest.provider_key == "gen_ai.provider.name"
    assert Conventions.from_env({"OTEL_SEMCONV_STABILITY_OPT_IN": "http"}).old_http is False


def test_request_parameters_from_each_dialect() -> None:
    openai = {"max_completion_tokens": 64, "temperature": 1, "top_p": 0.5}
    assert request_parameters(openai) == {
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 1.0,
        "gen_ai.request.top_p": 0.5,
    }
    ollama = {"options": {"num_predict": 32, "temperature": 0.2}}
    assert request_parameters(ollama) == {
        "gen_ai.request.max_tokens": 32,
        "gen_ai.request.temperature": 0.2,
    }
    assert request_parameters({"max_output_tokens": 8}) == {"gen_ai.request.max_tokens": 8}
    assert request_parameters({"temperature": True, "max_tokens": 1.5}) == {}
    assert request_parameters({"messages": [{"role": "user", "content": "x"}]}) == {}


def test_error_types_are_few_and_named() -> None:
    assert error_type(UpstreamStatus("boom", status=502)) == "502"
    assert error_type(FirstByteTimeout("slow")) == "timeout"
    assert error_type(UpstreamUnreachable("gone")) == "upstream-error"
    assert error_type(asyncio.CancelledError()) == "cancelled"
    assert error_type(ValueError()) == "ValueError"


def test_providers_follow_the_upstreams_dialect() -> None:
    assert provider("openai") == "openai"  # vLLM, llama-server: OpenAI's API and flavour
    assert provider("anthropic") == "anthropic"
    assert provider("ollama") == "ollama"
    assert provider(None) == "llama.cpp"  # the embedded model


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-00f067aa0ba902b7",  # no flags
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # an all-zero span id
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # the forbidden version
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # upper-case hex
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has four fields
        "garbage",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(value: str) -> None:
    assert parse_traceparent(value) is None


def test_a_valid_traceparent_is_read_with_its_state() -> None:
    parent = parse_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01", "vendor=x")
    assert parent == Parent(int(TRACE, 16), bytes.fromhex("00f067aa0ba902b7"), True, "vendor=x")
    later = parse_traceparent(f"01-{TRACE}-00f067aa0ba902b7-00-more")  # a later version
    assert later is not None and later.sampled is False


def test_samplers_follow_the_parent_then_their_rule() -> None:
    low, high = 1, 2**64 - 1  # trace ids by their lower 64 bits
    assert Sampler().sampled(None, low) and not Sampler().sampled(False, low)
    assert Sampler("always_on").sampled(False, low)
    assert not Sampler("always_off").sampled(True, low)
    half = Sampler("traceidratio", 0.5)
    assert half.sampled(None, low) and not half.sampled(None, high)
    assert Sampler("parentbased_traceidratio", 0.0).sampled(True, high)


def test_endpoints_headers_and_resource_from_the_variables() -> None:
    settings = OTLPSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://metrics:9000/in",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20x,team=ml",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes,region=eu",
        },
        traces=True,
        metrics=True,
    )
    assert settings.traces is not None and settings.metrics is not None
    assert settings.traces.url == "http://collector:4318/v1/traces"
    assert settings.metrics.url == "http://metrics:9000/in"
    assert settings.traces.headers == {"authorization": "Bearer x", "team": "ml"}
    assert settings.traces.gzip and not settings.metrics.gzip
    assert settings.resource["service.name"] == "from-attributes"
    assert settings.resource["region"] == "eu"
    named = OTLPSettings.from_env({"OTEL_SERVICE_NAME": "gpu1"}, traces=False, metrics=False)
    assert named.resource["service.name"] == "gpu1" and named.traces is None


@pytest.mark.parametrize(
    ("name", "root"),
    [
        ("always_on", True),
        ("parentbased_always_on", True),
        ("always_off", False),
        ("parentbased_always_off", False),
        ("traceidratio", None),
        ("parentbased_traceidratio", None),
    ],
)
def test_a_root_traces_sampling_is_known_before_its_id_except_by_ratio(
    name: str, root: bool | None
) -> None:
    sampler = Sampler(name, 0.5)
    assert sampler.root() is root
    if root is not None:  # the shortcut says what the rule says, for any id
        assert sampler.sampled(None, 0) is root
        assert sampler.sampled(None, 2**64 - 1) is root


def test_each_upstream_reader_keeps_the_model_its_answer_names() -> None:
    ollama = OllamaReader()
    ollama.read(
        [b'{"model":"qwen3:8b","message":{"role":"assistant","content":"hi"},"done":false}']
    )
    assert ollama.model == "qwen3:8b"
    chunk = b'data: {"model":"llama-3.1-8b","choices":[{"index":0,"delta":{"content":"x"}}]}'
    openai = OpenAIReader()
    openai.read([chunk, b""])
    assert openai.model == "llama-3.1-8b"
    anthropic = MessagesReader()
    start = {"type": "message_start", "message": {"model": "claude-local", "usage": {}}}
    anthropic.read([b"event: message_start", b"data: " + orjson.dumps(start), b""])
    assert anthropic.model == "claude-local"
    translated = CrossDialect(OpenAIReader(), OllamaWriter("m", "chat", NDJSON), aggregate=False)
    assert translated.response_model is None  # nothing read yet
    translated.feed([chunk, b""])
    assert translated.response_model == "llama-3.1-8b"  # the upstream's, not the client's "m"
