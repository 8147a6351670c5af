"""Fake model servers for the test suite: Ollama's API and an OpenAI-compatible one."""

from __future__ import annotations

from tests.fakes.ollama_wire import DEFAULT_MODEL, OLLAMA_VERSION
from tests.fakes.server import FakeOllama, Fault, RecordedRequest, Script

__all__ = ["DEFAULT_MODEL", "OLLAMA_VERSION", "FakeOllama", "Fault", "RecordedRequest", "Script"]
