"""Settings precedence (defaults < file < env < flags) and Ollama's address forms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cortex.server import resolve_upstream
from cortex.sources import ConfigError, load_settings
from cortex.urls import normalize_upstream, redact_url


def test_defaults_listen_on_loopback_port_4000_in_front_of_local_ollama() -> None:
    settings = load_settings({}, {})
    assert (settings.host, settings.port) == ("127.0.0.1", 4000)
    assert settings.upstream == "http://127.0.0.1:11434"
    assert settings.first_byte_timeout == 300
    assert settings.idle_timeout == 30
    assert settings.max_body_bytes == 10 * 1024 * 1024


def test_file_then_environment_then_flags_take_precedence(tmp_path: Path) -> None:
    config = tmp_path / "cortex.toml"
    config.write_text('port = 5000\nidle_timeout = 12.5\ndefault_model = "file-model"\n')
    from_file = load_settings({}, {}, config)
    assert (from_file.port, from_file.idle_timeout, from_file.default_model) == (
        5000,
        12.5,
        "file-model",
    )
    env = {"CORTEX_PORT": "6000", "CORTEX_DEFAULT_MODEL": "env-model"}
    from_env = load_settings({}, env, config)
    assert (from_env.port, from_env.idle_timeout, from_env.default_model) == (
        6000,
        12.5,
        "env-model",
    )
    from_flags = load_settings({"port": 7000, "default_model": None}, env, config)
    assert (from_flags.port, from_flags.default_model) == (7000, "env-model")


def test_a_backends_key_can_come_from_the_variable_its_table_names(tmp_path: Path) -> None:
    config = tmp_path / "cortex.toml"
    config.write_text(
        '[[backends]]\nurl = "openai+http://vllm:8000"\napi_key_env = "VLLM_KEY"\n'
        '[[backends]]\nurl = "http://ollama:11434"\n'
    )
    settings = load_settings({}, {"VLLM_KEY": "sk-from-secret"}, config)
    vllm, ollama = settings.backend_list()
    assert vllm.api_key is not None and vllm.api_key.get_secret_value() == "sk-from-secret"
    assert ollama.api_key is None
    with pytest.raises(ConfigError, match="api_key_env names 'VLLM_KEY', which is not set"):
        load_settings({}, {}, config)
    config.write_text('[[backends]]\napi_key = "a"\napi_key_env = "VLLM_KEY"\n')
    with pytest.raises(ConfigError, match="not both"):
        load_settings({}, {"VLLM_KEY": "b"}, config)


def test_config_file_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('upstream = "gpu-box:11434"\n')
    assert load_settings({}, {"CORTEX_CONFIG": str(config)}).upstream == "http://gpu-box:11434"


def test_ollama_host_is_used_only_when_nothing_else_names_the_upstream() -> None:
    assert load_settings({}, {"OLLAMA_HOST": "0.0.0.0:9999"}).upstream == "http://0.0.0.0:9999"
    env = {"OLLAMA_HOST": "other:1", "CORTEX_UPSTREAM": "http://mine:2"}
    assert load_settings({}, env).upstream == "http://mine:2"
    assert load_settings({"upstream": "flag:3"}, env).upstream == "http://flag:3"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("localhost", "http://localhost:11434"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        (":11435", "http://127.0.0.1:11435"),
        ("http://box", "http://box:11434"),
        ("https://box", "https://box:443"),
        ("https://box:8443/ollama/", "https://box:8443/ollama"),
        ("[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_upstream_accepts_ollama_host_forms(given: str, expected: str) -> None:
    assert normalize_upstream(given) == expected


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"port": 70000}, "port"),
        ({"upstream": "ftp://x"}, "unsupported upstream scheme"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_settings_say_which_and_why(flags: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(flags, {})


def test_unreadable_or_invalid_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({}, {}, tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, {}, broken)


def test_passwords_never_reach_the_logs() -> None:
    assert redact_url("http://user:s3cret@box:11434") == "http://user:***@box:11434"
    assert redact_url("http://box:11434") == "http://box:11434"


RAISE_LIMIT = """
import logging, resource, sys
from cortex.config import Settings
from cortex.server import raise_file_limit
logging.basicConfig(level=logging.WARNING, format="%(message)s")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
print(raise_file_limit(Settings(max_connections=int(sys.argv[1]))), hard)
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.parametrize("connections", [10_000, 100])
def test_the_open_file_limit_is_raised_for_max_connections(connections: int) -> None:
    run = subprocess.run(
        [sys.executable, "-c", RAISE_LIMIT, str(connections)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    (soft, hard), (now,) = (line.split() for line in run.stdout.splitlines())
    wanted = 2 * connections + 256
    assert int(soft) == int(now) == (wanted if int(hard) < 0 else min(wanted, int(hard)))
    assert ("allows about" in run.stderr) == (0 <= int(hard) < wanted)


def test_sharing_routing_through_redis_needs_a_redis() -> None:
    with pytest.raises(ConfigError, match="routing_share"):
        load_settings({"routing_share": "redis"})
    shared = load_settings({"redis_url": "redis://127.0.0.1:6379/0"})
    assert shared.shared_routing_url == "redis://127.0.0.1:6379/0"
    alone = load_settings({"redis_url": "redis://127.0.0.1:6379/0", "routing_share": "none"})
    assert alone.shared_routing_url is None


def test_with_backends_configured_the_embedded_model_is_not_chosen_nor_announced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(environ={}, flags={"backends": [{"url": "http://127.0.0.1:9"}]})
    assert settings.upstream_kind == "auto"
    with caplog.at_level("INFO"):
        resolved = resolve_upstream(settings)
    assert resolved is settings
    assert "embedded" not in caplog.text
    assert [b.kind for b in resolved.backend_list()] == ["ollama"]
