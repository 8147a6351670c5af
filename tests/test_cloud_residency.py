"""A cloud model (an Ollama entry with remote_host) is never counted as loaded memory."""

from __future__ import annotations

import orjson

from cortex.routing.residency import Residency, parse_ps


def test_a_cloud_model_takes_no_memory_and_is_never_cold() -> None:
    ps = {"models": [{"name": "gpt-oss:120b-cloud", "remote_host": "https://ollama.com"}]}
    assert parse_ps(orjson.dumps(ps)) == {}
    residency = Residency(loaded={}, remote={"gpt-oss:120b-cloud"})
    assert residency.is_loaded("gpt-oss:120b-cloud")
    residency.answered("gpt-oss:120b-cloud")
    assert residency.loaded == {}
    assert residency.crowd("llama3:8b") == 0
