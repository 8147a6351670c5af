"""Metrics, access logs and request ids, checked against the traffic sent."""

from __future__ import annotations

import io
import logging
import time

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cortex.observe.logs import JSONFormatter
from tests.conftest import RunningGateway
from tests.fakes import DEFAULT_MODEL, FakeOllama, Script
from tests.helpers import open_raw_stream, post_chat, read_until

HELLO = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hola"}]}


def scrape(gateway: RunningGateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(gateway.url + "/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, val) in ls for k, val in labels.items())
    )


def test_metrics_count_what_was_sent(fake: FakeOllama, gateway: RunningGateway) -> None:
    fake.script = Script(tokens=["uno", " dos", " tres"])
    for _ in range(2):
        assert post_chat(gateway.url, HELLO).status_code == 200
    assert post_chat(gateway.url, {**HELLO, "model": "nope"}).status_code == 404
    httpx.post(
        gateway.url + "/v1/chat/completions",
        json={**HELLO, "stream": True},
        timeout=10,
    )
    fake.script = Script(count=10_000, delay=0.02)
    sock = open_raw_stream(gateway.host, gateway.port, HELLO)
    read_until(sock, b"tok1 ")
    sock.close()
    assert fake.wait_disconnect(5) is not None
    time.sleep(0.2)

    samples = scrape(gateway)
    chat = {"route": "/api/chat"}
    assert value(samples, "cortex_requests_total", status="200", model=DEFAULT_MODEL, **chat) == 3
    assert value(samples, "cortex_requests_total", status="404", model="other", **chat) == 1
    assert value(samples, "cortex_requests_total", route="/v1/chat/completions", status="200") == 1
    assert value(samples, "cortex_time_to_first_token_seconds_count", **chat) == 3
    assert (
        value(samples, "cortex_tokens_total", kind="completion", model=DEFAULT_MODEL) >= 2 * 3 + 3
    )
    assert value(samples, "cortex_client_cancellations_total", **chat) == 1
    assert value(samples, "cortex_active_streams") == 0
    assert value(samples, "cortex_queue_depth") == 0


def test_upstream_errors_are_counted_by_kind(fake: FakeOllama, start_gateway: object) -> None:
    gateway = start_gateway(idle_timeout=0.3)  # type: ignore[operator]
    fake.script = Script(fault="stall_mid", fault_after=1)
    post_chat(gateway.url, HELLO)
    fake.script = Script(fault="close_mid", fault_after=1)
    post_chat(gateway.url, HELLO)
    samples = scrape(gateway)
    assert value(samples, "cortex_upstream_errors_total", kind="timeout") == 1
    assert value(samples, "cortex_upstream_errors_total", kind="upstream-error") == 1


def test_one_access_line_per_request_without_secrets(
    fake: FakeOllama, gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = Script(tokens=["a", "b"])
    with caplog.at_level(logging.INFO, logger="cortex.access"):
        post_chat(gateway.url, HELLO, headers={"Authorization": "Bearer sk-very-secret"})
        time.sleep(0.1)
    lines = [r for r in caplog.records if r.name == "cortex.access"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["status"] == 200
    assert fields["model"] == DEFAULT_MODEL
    assert fields["outcome"] == "done"
    assert fields["backend"]
    assert fields["completion_tokens"] == 2
    assert fields["ttft_ms"] is not None
    assert "sk-very-secret" not in caplog.text
    assert "hola" not in caplog.text  # prompts are never logged


def test_metrics_and_access_log_can_be_turned_off(
    fake: FakeOllama, start_gateway: object, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = start_gateway(metrics=False, access_log=False)  # type: ignore[operator]
    fake.script = Script(tokens=["a", "b"])
    with caplog.at_level(logging.INFO, logger="cortex.access"):
        answer = post_chat(gateway.url, HELLO)
        time.sleep(0.1)
    assert answer.status_code == 200
    assert b'"done":true' in answer.content
    assert not [r for r in caplog.records if r.name == "cortex.access"]
    scraped = httpx.get(gateway.url + "/metrics")
    assert scraped.status_code == 404
    assert "metrics are turned off" in scraped.json()["error"]


def test_request_ids_are_echoed_passed_upstream_or_made(
    fake: FakeOllama, gateway: RunningGateway
) -> None:
    given = post_chat(gateway.url, HELLO, headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    assert fake.requests[-1].headers["x-request-id"] == "trace-42.a"
    unsafe = post_chat(gateway.url, HELLO, headers={"X-Request-ID": "bad id <script>"})
    assert unsafe.headers["x-request-id"] != "bad id <script>"
    assert len(unsafe.headers["x-request-id"]) == 36
    made = httpx.get(gateway.url + "/api/tags")
    assert len(made.headers["x-request-id"]) == 36


def test_json_log_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("cortex.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("hello %s", "world", extra={"fields": {"request_id": "r1", "status": 200}})
    logger.removeHandler(handler)
    entry = orjson.loads(stream.getvalue())
    assert entry["message"] == "hello world"
    assert entry["level"] == "warning"
    assert entry["request_id"] == "r1"
    assert entry["status"] == 200


def test_model_labels_stay_bounded_when_an_upstream_answers_for_any_name() -> None:
    from cortex.observe import RequestRecord
    from cortex.observe.metrics import MAX_MODEL_LABELS, Metrics

    metrics = Metrics(lambda model: False, lambda: 0)
    for n in range(MAX_MODEL_LABELS + 50):
        record = RequestRecord(f"r{n}", "POST", "/api/chat", status=200, model=f"made-up-{n}")
        record.relayed = True
        metrics.observe(record, record.started + 0.1)
    families = text_string_to_metric_families(metrics.render().decode())
    models = {
        s.labels["model"] for f in families for s in f.samples if s.name == "cortex_requests_total"
    }
    assert len(models) == MAX_MODEL_LABELS + 1  # the first hundred, and "other"
