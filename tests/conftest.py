"""Shared fixtures: a fake model server and Córtex itself, both on real sockets."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from cortex.config import Settings
from cortex.listening import listen_socket
from cortex.server import build_server
from cortex.stream import push
from cortex.stream.ends import Conduit
from cortex.stream.push import Push
from tests.fakes import FakeOllama


class RunningGateway:
    """Córtex served by uvicorn on an ephemeral port, in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.server = build_server(settings)
        self.server.config.timeout_graceful_shutdown = 1
        self._socket = listen_socket(settings)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> RunningGateway:
        self._thread.start()
        deadline = time.monotonic() + 60  # the embedded model loads and self-tests first
        while not self.server.started and time.monotonic() < deadline:
            self._thread.join(0.01)
        assert self.server.started, "Córtex did not start"
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.host, self.port = "127.0.0.1", port
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@contextmanager
def gateway_per_dialect(fake: FakeOllama, **settings: Any) -> Iterator[dict[str, RunningGateway]]:
    """One Córtex in front of ``fake`` as an Ollama upstream and one as an OpenAI one
    (``openai+``), keyed ``ollama`` and ``openai``, with the same other ``settings``."""
    with ExitStack() as stack:
        gateways: dict[str, RunningGateway] = {}
        for kind, prefix in (("ollama", ""), ("openai", "openai+")):
            running = RunningGateway(
                Settings(upstream=prefix + fake.url, host="127.0.0.1", port=0, **settings)
            )
            gateways[kind] = stack.enter_context(running)
        yield gateways


@pytest.fixture(autouse=True, scope="session")
def _own_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """API keys the user made (~/.config/cortex/keys.json) must not turn keys on in tests."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    yield
    patch.undo()


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


StartGateway = Callable[..., RunningGateway]


@pytest.fixture
def start_gateway(fake: FakeOllama) -> Iterator[StartGateway]:
    """Start Córtex in front of the fake upstream; keyword arguments override settings."""
    running: list[RunningGateway] = []

    def start(**overrides: Any) -> RunningGateway:
        values: dict[str, Any] = {
            "upstream": fake.url,
            "host": "127.0.0.1",
            "port": 0,
            "idle_timeout": 2.0,
            "first_byte_timeout": 5.0,
            "connect_timeout": 2.0,
        }
        values.update(overrides)
        gateway = RunningGateway(Settings(**values)).__enter__()
        running.append(gateway)
        return gateway

    yield start
    for gateway in running:
        gateway.__exit__()


@pytest.fixture
def gateway(start_gateway: StartGateway) -> RunningGateway:
    return start_gateway()


@pytest.fixture
def direct_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts the streams handed to a client's connection below ASGI."""
    calls: list[str] = []
    original = Push.direct

    async def counted(self: Push, conduit: Conduit) -> bytes:
        calls.append(type(conduit).__name__)
        return await original(self, conduit)

    monkeypatch.setattr(push.Push, "direct", counted)
    yield calls


def pytest_unconfigure(config: pytest.Config) -> None:
    """llama.cpp's binding opens /dev/null twice at import and never closes it."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()
